"""An app and a client per test, on a migrated database of its own (SQLite and PostgreSQL).

The broker is kombu's SQLAlchemy transport on a SQLite file of the test's own: publishing works, nothing
consumes (the end-to-end tests bring a real worker), and `published_tasks` drains what was published. The
republisher is slowed down so that only the tests that want it see it act.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from core.queue import make_celery
from core.settings import Settings

SMALL_BODY_LIMIT = 4096
# What was published is in the queue before a test drains it (publishing is done when the call that
# published returns): the wait only confirms that nothing else is there.
DRAIN_WAIT_SECONDS = 0.05
TINY_SPEC: dict[str, Any] = {
    "architecture": {"kind": "mlp", "hidden": [16], "activation": "sigmoid"},
    "batch_norm": True,
    "learning_rate": 0.1,
    "dropout": 0.0,
    "name": "tiny",
    "batch_size": 32,
    "steps": 60,
    "eval_every": 10,
    "telemetry_every": 20,
    "device": "cpu",
}


def settings_for(database_url: str, broker_url: str, **overrides: Any) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        broker_url=broker_url,
        **{"republish_seconds": 3600.0, "max_body_bytes": SMALL_BODY_LIMIT, **overrides},
    )


@pytest.fixture
def broker_url(tmp_path: Path) -> str:
    return f"sqla+sqlite:///{tmp_path / 'broker.db'}"


@pytest.fixture
def api_settings(migrated_database_url: str, broker_url: str) -> Settings:
    return settings_for(migrated_database_url, broker_url)


@pytest.fixture
def client(api_settings: Settings) -> Iterator[TestClient]:
    app = create_app(api_settings)
    with TestClient(app) as test_client:
        yield test_client
    app.state.store.dispose()


def submit(client: TestClient, **changes: Any) -> dict[str, Any]:
    response = client.post("/v1/jobs", json={**TINY_SPEC, **changes})
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def published_tasks(broker_url: str, queue: str = "cpu") -> list[tuple[str, Any]]:
    """Drain `queue`: each task message's name and first argument (a job id, or a group's job ids)."""
    tasks: list[tuple[str, Any]] = []
    celery_app = make_celery(Settings(_env_file=None, broker_url=broker_url))  # type: ignore[call-arg]
    with celery_app.connection_for_read() as connection:
        simple_queue = connection.SimpleQueue(queue)
        while True:
            try:
                message = simple_queue.get(timeout=DRAIN_WAIT_SECONDS)
            except simple_queue.Empty:
                break
            tasks.append((message.headers["task"], message.decode()[0][0]))
            message.ack()
        simple_queue.close()
    return tasks
