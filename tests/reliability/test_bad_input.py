"""Hostile and malformed requests get a 4xx that says why, never a 5xx, and nothing a request asks for can
exceed the caps that keep one request from exhausting a worker.

schemathesis generates valid and invalid requests for every operation of the app's own OpenAPI document
(the event stream excepted: it streams until its job ends) and checks each answer: no server error, every
4xx has a `detail`, and every status code is one the operation documents.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import status_code_conformance

from api.main import create_app
from core.db.migrate import upgrade_database
from core.settings import Settings
from core.spec import MAX_BATCH_SIZE, MAX_CHANNELS, MAX_CNN_DEPTH, MAX_DEPTH, MAX_STEPS, MAX_WIDTH
from tests.reliability.conftest import TINY_SPEC

EXAMPLES_PER_OPERATION = 50  # valid and invalid requests together; the whole run stays well under a minute
BODY_LIMIT = 4096
SWEEP_SIZE_CAP = 8
STREAMING_PATHS = re.compile(r"/events$")


def documented_operations() -> list[str]:
    """'METHOD /path' of every operation the app documents (read without touching a database)."""
    app = create_app(Settings(_env_file=None, database_url="sqlite:///:memory:", broker_url="memory://"))
    paths: dict[str, dict[str, Any]] = app.openapi()["paths"]
    return [
        f"{method.upper()} {path}"
        for path, operations in paths.items()
        if not STREAMING_PATHS.search(path)
        for method in operations
    ]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    """The app on a migrated SQLite database, its broker a SQLite file nobody consumes."""
    folder: Path = tmp_path_factory.mktemp("bad-input")
    database_url = f"sqlite:///{folder / 'bnlab.db'}"
    upgrade_database(database_url)
    application = create_app(
        Settings(
            _env_file=None,
            database_url=database_url,
            broker_url=f"sqla+sqlite:///{folder / 'broker.db'}",
            republish_seconds=3600.0,
            max_body_bytes=BODY_LIMIT,
            max_sweep_size=SWEEP_SIZE_CAP,
        )
    )
    yield application
    application.state.store.dispose()


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def every_4xx_says_why(_context: Any, response: Any, _case: Any) -> None:
    """A custom check: every client error carries a non-empty `detail` (a message or FastAPI's list)."""
    if 400 <= response.status_code < 500:
        body = response.json()
        assert isinstance(body, dict) and body.get("detail"), (
            f"{response.status_code} without a detail: {response.text[:300]}"
        )


@pytest.mark.parametrize("operation", documented_operations())
def test_no_generated_request_gets_a_server_error_and_every_rejection_says_why(
    app: FastAPI, operation: str
) -> None:
    method, path = operation.split(" ", 1)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).include(method=method, path=path)
    [result] = list(schema.get_all_operations())
    api_operation = result.ok()  # type: ignore[union-attr]
    requests = st.one_of(
        api_operation.as_strategy(GenerationMode.POSITIVE), api_operation.as_strategy(GenerationMode.NEGATIVE)
    )

    @given(case=requests)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,  # no example database written into the project
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def answer_is_sound(case: Any) -> None:
        case.call_and_validate(checks=[not_a_server_error, every_4xx_says_why, status_code_conformance])

    answer_is_sound()


def mlp(hidden: list[int]) -> dict[str, Any]:
    return {"architecture": {"kind": "mlp", "hidden": hidden, "activation": "relu"}}


def cnn(channels: list[int]) -> dict[str, Any]:
    return {"architecture": {"kind": "cnn", "channels": channels, "activation": "relu"}}


@pytest.mark.parametrize(
    ("over_the_cap", "at_the_cap", "field"),
    [
        ({"steps": MAX_STEPS + 1}, {"steps": MAX_STEPS}, "steps"),
        (mlp([MAX_WIDTH + 1]), mlp([MAX_WIDTH]), "architecture"),
        (mlp([8] * (MAX_DEPTH + 1)), mlp([8] * MAX_DEPTH), "architecture"),
        (cnn([MAX_CHANNELS + 1]), cnn([MAX_CHANNELS]), "architecture"),
        (cnn([4] * (MAX_CNN_DEPTH + 1)), cnn([4] * MAX_CNN_DEPTH), "architecture"),
        ({"batch_size": MAX_BATCH_SIZE + 1}, {"batch_size": MAX_BATCH_SIZE}, "batch_size"),
    ],
)
def test_a_spec_over_a_cap_is_refused_naming_the_field_and_one_at_the_cap_accepted(
    client: TestClient, over_the_cap: dict[str, Any], at_the_cap: dict[str, Any], field: str
) -> None:
    over = client.post("/v1/jobs", json={**TINY_SPEC, **over_the_cap})
    assert over.status_code == 422
    assert any(error["loc"][:2] == ["body", field] for error in over.json()["detail"]), over.json()
    accepted = client.post("/v1/jobs", json={**TINY_SPEC, **at_the_cap})
    assert accepted.status_code == 201, accepted.text


def test_a_sweep_over_the_size_cap_is_refused_and_creates_nothing(client: TestClient) -> None:
    before = len(client.get("/v1/sweeps").json()["items"])
    sweep = {"name": "lr", "base": TINY_SPEC, "grid": {"learning_rate": [0.01, 0.1, 1.0]}}

    over = client.post("/v1/sweeps", json={**sweep, "seeds": [0, 1, 2]})  # 9 jobs
    assert over.status_code == 422 and str(SWEEP_SIZE_CAP) in over.text
    assert len(client.get("/v1/sweeps").json()["items"]) == before

    within = client.post("/v1/sweeps", json={**sweep, "seeds": [0, 1]})  # 6 jobs
    assert within.status_code == 201 and within.json()["size"] == 6


def test_a_body_over_the_limit_is_refused_before_it_is_read(client: TestClient) -> None:
    for path, body in (
        ("/v1/jobs", {**TINY_SPEC, "name": "x" * BODY_LIMIT}),
        ("/v1/sweeps", {"name": "x" * BODY_LIMIT, "base": TINY_SPEC}),
    ):
        answer = client.post(path, json=body)
        assert answer.status_code == 413 and str(BODY_LIMIT) in answer.json()["detail"]


def test_a_body_that_is_not_text_is_a_documented_400(client: TestClient) -> None:
    answer = client.post("/v1/jobs", content=b"\xff\xfe{", headers={"content-type": "application/json"})
    assert answer.status_code == 400 and answer.json()["detail"]
    documented = client.get("/openapi.json").json()["paths"]["/v1/jobs"]["post"]["responses"]
    assert "400" in documented


def test_a_short_run_that_leaves_eval_every_at_its_default_is_refused_not_a_server_error(
    client: TestClient,
) -> None:
    """Found by the generated requests: `steps: 1` with the default eval_every (50) used to be stored,
    then failed to validate again in the answer (500) and in the worker."""
    body = {key: value for key, value in TINY_SPEC.items() if key != "eval_every"} | {"steps": 1}
    answer = client.post("/v1/jobs", json=body)
    assert answer.status_code == 422
    [error] = answer.json()["detail"]
    assert error["loc"] == ["body", "eval_every"] and "must not exceed steps (1)" in error["msg"]
