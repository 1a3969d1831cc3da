"""`api.publication_marks`: the single submits' publication marks, written by a thread of the API process,
many jobs to a statement; what is pending when it stops is written, and without its thread a mark is
written at once. Both databases."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy
from fastapi.testclient import TestClient

from api.publication_marks import PublicationMarks
from core.spec import JobSpec
from core.store import Store
from tests.api.conftest import TINY_SPEC

JOBS = 40


def stored_job_ids(store: Store, count: int = JOBS) -> list[str]:
    return [store.create_job(JobSpec.model_validate(TINY_SPEC)).id for _ in range(count)]


def unmarked(store: Store, job_ids: list[str]) -> list[str]:
    return [job_id for job_id, view in store.get_jobs(job_ids).items() if view.enqueued_at is None]


@contextmanager
def updates_counted(store: Store) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(*arguments: Any) -> None:  # (connection, cursor, statement, parameters, ...)
        if arguments[2].lstrip().upper().startswith(("UPDATE", "WITH")):
            statements.append(arguments[2])

    sqlalchemy.event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        sqlalchemy.event.remove(store.engine, "before_cursor_execute", record)


def test_marks_added_from_many_request_threads_land_together_and_soon(store: Store) -> None:
    job_ids = stored_job_ids(store)
    marks = PublicationMarks(store)
    marks.start()
    try:
        with updates_counted(store) as updates:
            threads = [
                threading.Thread(target=lambda share=job_ids[index::8]: [marks.add([job]) for job in share])
                for index in range(8)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            deadline = time.monotonic() + 5.0
            while unmarked(store, job_ids) and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        marks.stop()
    assert unmarked(store, job_ids) == []
    assert 1 <= len(updates) < JOBS // 2  # marks gathered while a statement ran: not one per job


def test_stopping_writes_every_mark_still_pending(store: Store) -> None:
    job_ids = stored_job_ids(store)
    marks = PublicationMarks(store)
    marks.start()
    for job_id in job_ids:
        marks.add([job_id])
    marks.stop()
    assert unmarked(store, job_ids) == []


def test_without_its_thread_a_mark_is_written_at_once(store: Store) -> None:
    before, after = stored_job_ids(store, 2)
    marks = PublicationMarks(store)
    marks.add([before])  # never started: the caller writes it
    assert unmarked(store, [before]) == []
    marks.start()
    marks.stop()
    marks.add([after])  # stopped: the caller writes it again
    assert unmarked(store, [after]) == []


def test_a_failed_statement_is_logged_and_the_next_marks_still_land(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """The database refuses one statement (a connection the server ended, as in a restart): those jobs stay
    unmarked for the republisher, and the thread goes on."""
    first, second = stored_job_ids(store, 2)
    marks = PublicationMarks(store)
    marks.start()
    failed_once = threading.Event()

    def refuse_once(connection: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("UPDATE", "WITH")) and not failed_once.is_set():
            failed_once.set()
            raise RuntimeError("the database went away")

    sqlalchemy.event.listen(store.engine, "before_cursor_execute", refuse_once)
    try:
        with caplog.at_level(logging.WARNING, logger="api.publication_marks"):
            marks.add([first])
            deadline = time.monotonic() + 5.0
            while not failed_once.is_set() and time.monotonic() < deadline:
                time.sleep(0.01)
            marks.add([second])
            marks.stop()
    finally:
        sqlalchemy.event.remove(store.engine, "before_cursor_execute", refuse_once)
    assert unmarked(store, [first, second]) == [first]
    assert "1 published jobs not marked enqueued (the republisher retries)" in caplog.text


def test_a_submitted_job_is_marked_published_moments_after_its_answer(
    client: TestClient, store: Store
) -> None:
    job_id = client.post("/v1/jobs", json=TINY_SPEC).json()["id"]
    deadline = time.monotonic() + 5.0
    while unmarked(store, [job_id]) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert unmarked(store, [job_id]) == []
