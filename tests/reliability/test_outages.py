"""A broker or a database that goes away costs no accepted job and leaves nothing half-written.

The broker is the session's private redis-server, stopped and restarted (or made to refuse writes) by the
test; the database is a real PostgreSQL behind a TCP proxy that the test cuts or silences. The shared
servers are never touched.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy.engine import make_url

from api.errors import DATABASE_UNAVAILABLE
from api.republisher import Republisher
from core.db.engine import ANSWER_GRACE_SECONDS, POSTGRES_CONNECT_TIMEOUT_SECONDS
from core.queue import make_celery
from core.settings import Settings
from core.spec import JobSpec
from core.store import Store
from tests.fixtures.proxy import CuttableProxy
from tests.fixtures.worker import RedisServer, RunningWorker
from tests.reliability.conftest import (
    TINY_SPEC,
    api_for,
    api_with,
    job_of,
    uninterrupted_metrics,
    wait_until_finished,
)

pytestmark = pytest.mark.service

# How long the republisher leaves a new job to the submit path's own publish before it steps in (5 s in
# service; shorter here, so that the outage below lasts a few seconds).
UNPUBLISHED_AFTER_SECONDS = 1.0
# The API's statement timeout in the silent-database test (30 s in service).
SILENT_STATEMENT_TIMEOUT_SECONDS = 1.0


def assert_ran_exactly_once(worker: RunningWorker, job_id: str) -> None:
    finished = wait_until_finished(worker, job_id, 60, "the job to finish")
    assert (finished.status, finished.attempts, finished.lease_losses) == ("succeeded", 1, 0)
    assert worker.store.read_metrics(job_id, None, 10_000) == uninterrupted_metrics(TINY_SPEC)


def test_a_job_submitted_while_the_broker_is_down_is_kept_and_runs_once_it_is_back(
    postgres_redis_worker: RunningWorker, private_redis: RedisServer
) -> None:
    worker = postgres_redis_worker
    with api_for(worker) as client:
        client.app.state.republisher.unpublished_after_seconds = UNPUBLISHED_AFTER_SECONDS  # type: ignore[attr-defined]
        private_redis.stop()
        try:
            started = time.monotonic()
            submitted = client.post("/v1/jobs", json=TINY_SPEC)
            submit_seconds = time.monotonic() - started
            ready = client.get("/readyz")
            # Past the submit path's grace: the republisher has found the job and must leave it alone.
            time.sleep(UNPUBLISHED_AFTER_SECONDS + 2 * worker.settings.republish_seconds)
            job_id = submitted.json()["id"]
            while_down = job_of(worker, job_id)
        finally:
            private_redis.start()
        assert_ran_exactly_once(worker, job_id)

    assert submitted.status_code == 201, submitted.text
    assert submitted.json()["status"] == "queued"
    assert submit_seconds < 10
    assert ready.status_code == 503 and ready.json()["broker"] == "unavailable"
    assert (while_down.status, while_down.enqueued_at, while_down.attempts) == ("queued", None, 0)


def test_a_republisher_whose_publish_fails_releases_the_job_for_its_next_round(
    postgres_redis_worker: RunningWorker, private_redis: RedisServer
) -> None:
    worker = postgres_redis_worker
    job = worker.store.create_job(JobSpec.model_validate(TINY_SPEC))  # stored, never published
    celery_app = make_celery(worker.settings)
    republisher = Republisher(worker.store, celery_app, worker.settings, unpublished_after_seconds=0)
    broker = redis.Redis.from_url(private_redis.url)
    # The broker answers (it is reachable) but refuses every write, as a Redis out of memory does.
    broker.config_set("maxmemory-policy", "noeviction")
    broker.config_set("maxmemory", 1)
    try:
        assert broker.ping()
        assert republisher.republish_once() == []
        refused = job_of(worker, job.id)
    finally:
        broker.config_set("maxmemory", 0)
    try:
        assert (refused.status, refused.enqueued_at) == ("queued", None)  # found again by the next round
        assert republisher.republish_once() == [job.id]
        assert_ran_exactly_once(worker, job.id)
    finally:
        celery_app.close()


@pytest.fixture
def proxied_postgres(migrated_postgres_url: str) -> Iterator[tuple[str, CuttableProxy]]:
    """A migrated PostgreSQL database and the URL of a proxy in front of it that the test can take down."""
    url = make_url(migrated_postgres_url)
    proxy = CuttableProxy(url.port or 5432)
    try:
        yield url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False), proxy
    finally:
        proxy.close()


def api_settings(database_url: str, tmp_path: Path, **changes: Any) -> Settings:
    """An API's settings on `database_url`, a broker file of its own, no republisher round in the test."""
    return Settings(
        _env_file=None,
        database_url=database_url,
        broker_url=f"sqla+sqlite:///{tmp_path / 'broker.db'}",
        republish_seconds=3600.0,
        **changes,
    )


def test_a_database_down_is_503_with_a_clear_message_and_leaves_nothing_half_written(
    proxied_postgres: tuple[str, CuttableProxy], migrated_postgres_url: str, tmp_path: Path
) -> None:
    proxied_url, proxy = proxied_postgres
    settings = api_settings(proxied_url, tmp_path)
    direct = Store(migrated_postgres_url)
    try:
        with api_with(settings) as client:
            before = client.post("/v1/jobs", json=TINY_SPEC)
            assert before.status_code == 201
            proxy.go_down()
            started = time.monotonic()
            answers = {
                "submit": client.post("/v1/jobs", json=TINY_SPEC),
                "list": client.get("/v1/jobs"),
                "read": client.get(f"/v1/jobs/{before.json()['id']}"),
                "cancel": client.post(f"/v1/jobs/{before.json()['id']}/cancel"),
            }
            outage_seconds = time.monotonic() - started
            ready_while_down = client.get("/readyz")
            alive_while_down = client.get("/healthz")
            proxy.come_back()
            after = client.post("/v1/jobs", json=TINY_SPEC)
            ready_after = client.get("/readyz")

        jobs, _ = direct.list_jobs()
    finally:
        direct.dispose()

    for what, answer in answers.items():
        assert answer.status_code == 503, (what, answer.text)
        assert answer.json() == {"detail": DATABASE_UNAVAILABLE}, what
        assert answer.headers["retry-after"] == "5"
    assert outage_seconds < 10  # refused at once, not after a hang
    assert ready_while_down.status_code == 503
    assert ready_while_down.json() == {"status": "unavailable", "database": "unavailable", "broker": "ok"}
    assert alive_while_down.status_code == 200
    assert after.status_code == 201 and ready_after.status_code == 200  # the app recovers on its own
    # The submit refused during the outage stored nothing; the cancel changed nothing.
    assert [job.id for job in jobs] == [after.json()["id"], before.json()["id"]]
    assert [job.status for job in jobs] == ["queued", "queued"]
    assert not any(job.cancel_requested for job in jobs)


def test_a_database_gone_silent_on_an_open_connection_is_503_within_the_statement_timeout(
    proxied_postgres: tuple[str, CuttableProxy], tmp_path: Path
) -> None:
    proxied_url, proxy = proxied_postgres
    settings = api_settings(
        proxied_url, tmp_path, database_statement_timeout_seconds=SILENT_STATEMENT_TIMEOUT_SECONDS
    )
    with api_with(settings) as client:
        submitted = client.post("/v1/jobs", json=TINY_SPEC)
        assert submitted.status_code == 201
        job_path = f"/v1/jobs/{submitted.json()['id']}"
        assert client.get(job_path).status_code == 200  # the pooled connection is open and idle
        # Packets dropped (or the server's process hung): the connection stays open, nothing answers.
        proxy.go_silent()
        started = time.monotonic()
        while_silent = client.get(job_path)
        silent_seconds = time.monotonic() - started
        proxy.speak_again()
        after = client.get(job_path)

    assert while_silent.status_code == 503, while_silent.text
    assert while_silent.json() == {"detail": DATABASE_UNAVAILABLE}
    assert while_silent.headers["retry-after"] == "5"
    # The pool's ping gives up on the open connection after the statement timeout and a second; its one
    # attempt at a new connection meets the connect timeout. Without a bound it waits for TCP (minutes).
    bound = SILENT_STATEMENT_TIMEOUT_SECONDS + ANSWER_GRACE_SECONDS + POSTGRES_CONNECT_TIMEOUT_SECONDS
    assert silent_seconds < bound + 2, f"answered after {silent_seconds:.1f} s"
    assert after.status_code == 200 and after.json()["status"] == "queued"  # the app recovers on its own
