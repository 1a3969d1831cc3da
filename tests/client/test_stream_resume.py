"""The CLI's event reader survives a dropped connection: it reconnects with Last-Event-ID and the job's
events arrive without gaps or repeats. The drop is made by a test-owned TCP proxy in front of the real
service, which cuts every open connection while still accepting new ones."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from client.http import BnlabClient, JobEvent
from tests.fixtures.proxy import CuttableProxy
from tests.fixtures.service import SLOW_SPEC, RunningService


@pytest.fixture
def proxy(sqlite_service: RunningService) -> Iterator[CuttableProxy]:
    cuttable = CuttableProxy(int(sqlite_service.url.rsplit(":", 1)[1]))
    try:
        yield cuttable
    finally:
        cuttable.close()


def test_a_dropped_stream_resumes_without_gaps_or_repeats(
    sqlite_service: RunningService, proxy: CuttableProxy
) -> None:
    job_id = sqlite_service.submit(SLOW_SPEC)
    events: list[JobEvent] = []
    with BnlabClient(f"http://127.0.0.1:{proxy.port}") as client:
        for event in client.job_events(job_id):
            events.append(event)
            if event.kind == "metrics" and proxy.cuts == 0:
                proxy.cut()  # mid-run: the next events must come over a new connection
    assert proxy.cuts == 1
    assert proxy.accepted == 2, "the reader reconnected once"

    statuses = [(event.last_event_id, event.data["status"]) for event in events if event.kind == "status"]
    assert statuses == [("status:1", "queued"), ("status:2", "running"), ("status:3", "succeeded")]
    metric_steps = [event.data["step"] for event in events if event.kind == "metrics"]
    answer = httpx.get(f"{sqlite_service.url}/v1/jobs/{job_id}/metrics", params={"max_points": 10_000})
    stored_steps = answer.json()["series"]["val_accuracy"]["steps"]
    assert metric_steps == stored_steps
