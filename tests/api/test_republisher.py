"""The republisher publishes jobs the broker never got or lost, once, and leaves the rest alone."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
import sqlalchemy
from fastapi.testclient import TestClient

from api.main import create_app
from api.republisher import UNPUBLISHED_AFTER_SECONDS, Republisher
from core.db.tables import Job
from core.queue import make_celery
from core.settings import Settings
from core.spec import JobSpec
from core.store import Store
from tests.api.conftest import TINY_SPEC, published_tasks, settings_for
from tests.api.test_health import UNREACHABLE_REDIS


def published_job_ids(broker_url: str, queue: str) -> list[str]:
    """Drain `queue` and return the job id each task message carries."""
    return [str(job_id) for _, job_id in published_tasks(broker_url, queue)]


def submit_while_the_broker_is_down(migrated_database_url: str) -> str:
    with TestClient(create_app(settings_for(migrated_database_url, UNREACHABLE_REDIS))) as client:
        response = client.post("/v1/jobs", json=TINY_SPEC)
    assert response.status_code == 201
    job_id: str = response.json()["id"]
    return job_id


def test_a_job_never_published_is_published_once_the_broker_answers(
    migrated_database_url: str, broker_url: str, store: Store
) -> None:
    job_id = submit_while_the_broker_is_down(migrated_database_url)
    down = settings_for(migrated_database_url, UNREACHABLE_REDIS)
    assert Republisher(store, make_celery(down), down, unpublished_after_seconds=0).republish_once() == []
    job = store.get_job(job_id)
    assert job is not None and job.enqueued_at is None  # still waiting for a broker

    up = settings_for(migrated_database_url, broker_url)
    republisher = Republisher(store, make_celery(up), up, unpublished_after_seconds=0)
    assert republisher.republish_once() == [job_id]
    assert republisher.republish_once() == []  # claimed: not published twice
    job = store.get_job(job_id)
    assert job is not None and job.enqueued_at is not None
    assert published_job_ids(broker_url, "cpu") == [job_id]


def test_a_just_submitted_job_is_left_to_the_submit_path(
    migrated_database_url: str, broker_url: str, store: Store
) -> None:
    job = store.create_job(JobSpec.model_validate(TINY_SPEC))  # stored, its publish still under way
    up = settings_for(migrated_database_url, broker_url)
    assert Republisher(store, make_celery(up), up).republish_once() == []  # not yet 5 s old
    assert published_job_ids(broker_url, "cpu") == []
    stored = store.get_job(job.id)
    assert stored is not None and stored.enqueued_at is None


def test_a_running_job_with_a_stale_lease_is_published_again(
    migrated_database_url: str, broker_url: str, store: Store
) -> None:
    settings: Settings = settings_for(migrated_database_url, broker_url, lease_seconds=0.5)
    with TestClient(create_app(settings)) as client:
        job_id = client.post("/v1/jobs", json=TINY_SPEC).json()["id"]
    published_job_ids(broker_url, "cpu")  # the submit's own message
    assert store.acquire_lease(job_id, f"dead-worker-{uuid.uuid4().hex[:6]}", lease_seconds=0.5).acquired
    republisher = Republisher(store, make_celery(settings), settings)
    assert republisher.republish_once() == []  # the lease is fresh
    time.sleep(1.0)
    assert republisher.republish_once() == [job_id]
    assert republisher.republish_once() == []
    assert published_job_ids(broker_url, "cpu") == [job_id]


def test_the_apps_own_republisher_thread_publishes_a_stranded_job(
    migrated_database_url: str, broker_url: str, store: Store
) -> None:
    job_id = submit_while_the_broker_is_down(migrated_database_url)
    # Stored long enough ago for the republisher to count it as never published, without waiting for that.
    stored = store.get_job(job_id)
    assert stored is not None
    with store._engine.begin() as connection:
        connection.execute(
            sqlalchemy.update(Job)
            .where(Job.public_id == job_id)
            .values(created_at=stored.created_at - timedelta(seconds=UNPUBLISHED_AFTER_SECONDS + 1))
        )
    with TestClient(create_app(settings_for(migrated_database_url, broker_url, republish_seconds=0.3))):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            job = store.get_job(job_id)
            if job is not None and job.enqueued_at is not None:
                break
            time.sleep(0.2)
    assert published_job_ids(broker_url, "cpu") == [job_id]


def test_the_interval_is_read_under_its_name_and_under_its_name_of_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BNLAB_SWEEP_SECONDS", "7")  # an .env written before the republisher had its name
    assert Settings(_env_file=None).republish_seconds == 7.0  # type: ignore[call-arg]
    monkeypatch.setenv("BNLAB_REPUBLISH_SECONDS", "2")
    assert Settings(_env_file=None).republish_seconds == 2.0  # type: ignore[call-arg]
