"""Many generated requests against PostgreSQL (where NUL in a string and integer overflows used to be 500s),
and generated sequences of them that follow the links between operations (a job created, then read,
cancelled, plotted...): none gets a 5xx, and every 4xx says why. Slow (minutes): `-m slow` runs it.

The stateless run sends `EXAMPLES_PER_OPERATION` requests to each operation; the stateful run plays
`SEQUENCES` sequences of up to `STEPS_PER_SEQUENCE` calls, each from an empty database (the links schemathesis
follows depend on what earlier answers held, so a sequence must not see another's jobs). Both are bounded by
their counts; the event stream is left out (it streams until its job ends).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from api.main import create_app
from core.db.migrate import upgrade_database
from core.db.tables import Base
from tests.api.conftest import settings_for
from tests.reliability.test_bad_input import STREAMING_PATHS, documented_operations, every_4xx_says_why

pytestmark = [pytest.mark.fuzz, pytest.mark.service, pytest.mark.timeout(900)]

EXAMPLES_PER_OPERATION = 500
SEQUENCES = 500
STEPS_PER_SEQUENCE = 6
GENERATION = settings(
    deadline=None,
    database=None,  # no example database written into the project
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def app(postgres_url: str, tmp_path: Path) -> Iterator[FastAPI]:
    """The app on a migrated PostgreSQL database, its broker a SQLite file nobody consumes."""
    upgrade_database(postgres_url)
    application = create_app(
        settings_for(postgres_url, f"sqla+sqlite:///{tmp_path / 'broker.db'}", max_sweep_size=8)
    )
    with TestClient(application):
        yield application
    application.state.store.dispose()


@pytest.mark.parametrize("operation", documented_operations())
def test_many_generated_requests_get_no_server_error_on_postgresql(app: FastAPI, operation: str) -> None:
    method, path = operation.split(" ", 1)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).include(method=method, path=path)
    [result] = list(schema.get_all_operations())
    api_operation = result.ok()  # type: ignore[union-attr]
    requests = st.one_of(
        api_operation.as_strategy(GenerationMode.POSITIVE), api_operation.as_strategy(GenerationMode.NEGATIVE)
    )

    @given(case=requests)
    @settings(GENERATION, max_examples=EXAMPLES_PER_OPERATION)
    def answer_is_sound(case: Any) -> None:
        case.call_and_validate(checks=[not_a_server_error, every_4xx_says_why])

    answer_is_sound()


def test_generated_sequences_following_the_links_get_no_server_error(app: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path_regex=STREAMING_PATHS.pattern)
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    failures: list[str] = []

    class Sequences(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            with app.state.store.engine.begin() as connection:
                connection.execute(sa.text(f"TRUNCATE {tables} CASCADE"))

        def validate_response(self, response: Any, case: Any, **_options: Any) -> None:
            # Collected rather than raised: replaying a sequence against a database that has moved on
            # is not deterministic, so hypothesis could not shrink it anyway.
            if response.status_code >= 500 or (
                400 <= response.status_code < 500 and not response.json().get("detail")
            ):
                answer = f"{response.status_code} {response.text[:300]}"
                failures.append(f"{case.method} {case.formatted_path} {case.query} → {answer}")

    Sequences.run(
        settings=settings(GENERATION, max_examples=SEQUENCES, stateful_step_count=STEPS_PER_SEQUENCE)
    )
    assert not failures, "\n".join(failures[:20])
