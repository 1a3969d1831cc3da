"""Liveness, readiness, and what a client sees when the database or the broker is down."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from api.errors import DATABASE_UNAVAILABLE, SCHEMA_MISSING
from api.main import create_app
from core.settings import Settings
from core.store import Store
from tests.api.conftest import TINY_SPEC, settings_for

UNREACHABLE_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:1/bnlab"
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


def test_healthz_and_readyz_answer_200_when_everything_is_up(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "database": "ok", "broker": "ok"}


def test_readyz_is_503_naming_the_broker_when_it_is_down(migrated_database_url: str) -> None:
    with TestClient(create_app(settings_for(migrated_database_url, UNREACHABLE_REDIS))) as client:
        started = time.monotonic()
        ready = client.get("/readyz")
        assert time.monotonic() - started < 5
        assert client.get("/healthz").status_code == 200
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "database": "ok", "broker": "unavailable"}


def test_database_down_is_503_with_a_clear_message_never_500(broker_url: str, tmp_path: Path) -> None:
    # A SQLite file that is not there is created empty: reachable, but not migrated.
    for database_url, detail, database in (
        (UNREACHABLE_POSTGRES, DATABASE_UNAVAILABLE, "unavailable"),
        (f"sqlite:///{tmp_path / 'missing' / 'dir' / 'bnlab.db'}", SCHEMA_MISSING, "not migrated"),
    ):
        with TestClient(create_app(settings_for(database_url, broker_url))) as client:
            listing = client.get("/v1/jobs")
            submitted = client.post("/v1/jobs", json=TINY_SPEC)
            one = client.get("/v1/jobs/0123456789abcdef0123456789abcdef")
            ready = client.get("/readyz")
            alive = client.get("/healthz")
        for response in (listing, submitted, one):
            assert response.status_code == 503, response.text
            assert response.json() == {"detail": detail}
            assert "127.0.0.1" not in response.text and "postgres" not in response.text
        assert ready.status_code == 503 and ready.json()["database"] == database
        assert alive.status_code == 200


def test_a_broker_down_at_submit_still_answers_201_and_keeps_the_job_queued(
    migrated_database_url: str, store: Store
) -> None:
    settings: Settings = settings_for(migrated_database_url, UNREACHABLE_REDIS)
    with TestClient(create_app(settings)) as client:
        started = time.monotonic()
        response = client.post("/v1/jobs", json=TINY_SPEC)
        elapsed = time.monotonic() - started
        assert response.status_code == 201, response.text
        job_id = response.json()["id"]
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"
    assert elapsed < 10, f"submitting took {elapsed:.1f} s with the broker down"
    stored = store.get_job(job_id)
    assert stored is not None and stored.status == "queued" and stored.enqueued_at is None
