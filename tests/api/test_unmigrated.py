"""An API started on a database the migrations never ran on answers a 503 that says what to do, on SQLite
and PostgreSQL, instead of a 500 (PostgreSQL) or a misleading "database unavailable" (SQLite)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from tests.api.conftest import TINY_SPEC, settings_for


@pytest.fixture
def unmigrated_client(database_url: str, broker_url: str) -> Iterator[TestClient]:
    app = create_app(settings_for(database_url, broker_url))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
    app.state.store.dispose()


def test_every_route_on_an_unmigrated_database_is_a_503_saying_run_the_migrations(
    unmigrated_client: TestClient,
) -> None:
    for method, path, body in (
        ("GET", "/v1/jobs", None),
        ("POST", "/v1/jobs", TINY_SPEC),
        ("GET", f"/v1/jobs/{'0' * 32}", None),
        ("GET", "/v1/sweeps", None),
    ):
        response = unmigrated_client.request(method, path, json=body)
        assert response.status_code == 503, (method, path, response.text)
        assert "run the migrations" in response.json()["detail"], response.json()
    ready = unmigrated_client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["database"] == "not migrated"
