"""Deleting a running job, and a sweep whose fused group is training, against the real service (API +
worker, both modes): each is cancelled, stops, and is deleted with every row of it (checked in SQL); a
client reading the job's event stream sees the stream end."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import sqlalchemy as sa
from httpx_sse import connect_sse

from core.db.engine import create_database_engine
from tests.api.test_events import STREAM_TIMEOUT
from tests.fixtures.service import SLOW_SPEC, RunningService

pytestmark = pytest.mark.service

# Far more steps than it trains before the delete, with every per-job table written early.
LONG_SPEC = {**SLOW_SPEC, "steps": 5000, "checkpoint_every": 10, "telemetry_every": 10, "landscape_every": 10}
JOB_KEYED_TABLES = ("metric", "metric_rollup", "telemetry", "landscape", "checkpoint", "fused_group_job")


def _rows_of(database_url: str, job_row_id: int) -> dict[str, int]:
    engine = create_database_engine(database_url)
    try:
        with engine.connect() as connection:
            return {
                table: connection.scalar(
                    sa.text(f"SELECT count(*) FROM {table} WHERE job_id = :id"), {"id": job_row_id}
                )
                or 0
                for table in JOB_KEYED_TABLES
            } | {
                "job": connection.scalar(
                    sa.text("SELECT count(*) FROM job WHERE id = :id"), {"id": job_row_id}
                )
                or 0
            }
    finally:
        engine.dispose()


def _job_row_id(database_url: str, job_id: str) -> int:
    engine = create_database_engine(database_url)
    try:
        with engine.connect() as connection:
            row_id = connection.scalar(sa.text("SELECT id FROM job WHERE public_id = :id"), {"id": job_id})
    finally:
        engine.dispose()
    assert isinstance(row_id, int)
    return row_id


def test_deleting_a_running_job_stops_it_ends_its_stream_and_leaves_no_row(
    running_service: RunningService,
) -> None:
    service = running_service
    job_id = service.submit(LONG_SPEC)
    stream_events: list[str] = []
    stream_ended = threading.Event()

    def read_stream() -> None:
        with (
            httpx.Client(base_url=service.url, timeout=STREAM_TIMEOUT) as client,
            connect_sse(client, "GET", f"/v1/jobs/{job_id}/events") as source,
        ):
            for message in source.iter_sse():
                stream_events.append(message.event)
        stream_ended.set()

    reader = threading.Thread(target=read_stream, daemon=True)
    reader.start()
    deadline = time.monotonic() + 60
    while (progress := service.job(job_id)["progress"]) is None or progress["step"] < 20:
        assert time.monotonic() < deadline, "the job never trained 20 steps"
        time.sleep(0.1)
    row_id = _job_row_id(service.database_url, job_id)
    before = _rows_of(service.database_url, row_id)
    assert all(before[table] for table in ("metric", "metric_rollup", "telemetry", "landscape", "checkpoint"))

    response = httpx.delete(f"{service.url}/v1/jobs/{job_id}", timeout=60)

    assert response.status_code == 204, response.text
    assert httpx.get(f"{service.url}/v1/jobs/{job_id}").status_code == 404
    assert stream_ended.wait(10), "the event stream of the deleted job did not end"
    assert "metrics" in stream_events
    time.sleep(1.0)  # a worker that went on writing would leave rows behind by now
    assert _rows_of(service.database_url, row_id) == dict.fromkeys((*JOB_KEYED_TABLES, "job"), 0)


def test_deleting_a_training_fused_sweep_stops_its_group_and_leaves_no_row(
    running_service: RunningService,
) -> None:
    service = running_service
    sweep = httpx.post(
        f"{service.url}/v1/sweeps",
        json={"base": LONG_SPEC, "grid": {"learning_rate": [0.1, 0.2]}, "seeds": [0], "execution": "fused"},
        timeout=30,
    ).json()
    deadline = time.monotonic() + 60
    while (progress := service.job(sweep["job_ids"][0])["progress"]) is None or progress["step"] < 20:
        assert time.monotonic() < deadline, "the fused group never trained 20 steps"
        time.sleep(0.1)
    row_ids = [_job_row_id(service.database_url, job_id) for job_id in sweep["job_ids"]]

    response = httpx.delete(f"{service.url}/v1/sweeps/{sweep['id']}", timeout=60)

    assert response.status_code == 204, response.text
    assert httpx.get(f"{service.url}/v1/sweeps/{sweep['id']}").status_code == 404
    time.sleep(1.0)  # a group that went on writing would leave rows behind by now
    for row_id in row_ids:
        assert _rows_of(service.database_url, row_id) == dict.fromkeys((*JOB_KEYED_TABLES, "job"), 0)
    engine = create_database_engine(service.database_url)
    try:
        with engine.connect() as connection:
            groups = connection.scalar(
                sa.text(
                    "SELECT count(*) FROM fused_group g JOIN sweep s ON s.id = g.sweep_id "
                    "WHERE s.public_id = :id"
                ),
                {"id": sweep["id"]},
            )
            orphan_checkpoints = connection.scalar(
                sa.text(
                    "SELECT count(*) FROM fused_checkpoint WHERE group_id NOT IN (SELECT id FROM fused_group)"
                )
            )
    finally:
        engine.dispose()
    assert (groups, orphan_checkpoints) == (0, 0)
