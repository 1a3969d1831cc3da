"""`api.publishing`: the jobs a sweep trains one by one are published each, then marked enqueued together;
a broker that refuses is asked once, not once per job, and what it did not take stays for the republisher.
Both databases; the broker is kombu's SQLite transport, or a Redis address where nothing listens."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy

from api.publishing import publish_each
from core.queue import make_celery
from core.settings import Settings
from core.spec import JobSpec
from core.store import Store
from tests.api.conftest import TINY_SPEC
from tests.fixtures.worker import free_port

JOBS = 6


def stored_jobs(store: Store) -> list[tuple[str, str]]:
    return [(store.create_job(JobSpec.model_validate(TINY_SPEC)).id, "cpu") for _ in range(JOBS)]


def test_jobs_published_one_by_one_are_marked_enqueued_together(store: Store, broker_url: str) -> None:
    jobs = stored_jobs(store)
    statements: list[str] = []

    def record(*arguments: Any) -> None:  # (connection, cursor, statement, parameters, ...)
        statements.append(arguments[2])

    sqlalchemy.event.listen(store.engine, "before_cursor_execute", record)
    try:
        publish_each(store, make_celery(Settings(broker_url=broker_url)), jobs)
    finally:
        sqlalchemy.event.remove(store.engine, "before_cursor_execute", record)
    assert len([statement for statement in statements if "UPDATE" in statement.upper()]) == 1
    views = store.get_jobs([job_id for job_id, _ in jobs])
    assert all(view.enqueued_at is not None and view.status == "queued" for view in views.values())


def test_a_broker_that_refuses_is_asked_once_and_the_jobs_stay_for_the_republisher(store: Store) -> None:
    jobs = stored_jobs(store)
    nobody_listens = make_celery(Settings(broker_url=f"redis://127.0.0.1:{free_port()}/0"))
    started = time.monotonic()
    publish_each(store, nobody_listens, jobs[:1])
    one_job_seconds = time.monotonic() - started

    started = time.monotonic()
    publish_each(store, nobody_listens, jobs)
    all_jobs_seconds = time.monotonic() - started

    assert all_jobs_seconds < one_job_seconds * 2 + 0.5  # not once per job: that would take about 6 times
    views = store.get_jobs([job_id for job_id, _ in jobs])
    assert all(view.enqueued_at is None and view.status == "queued" for view in views.values())
