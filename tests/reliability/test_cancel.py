"""Cancel: a queued job never starts; a running one stops within 2 s (measured from the request to the
status a client reads), ends `cancelled`, and keeps the metrics it had reported. Both modes."""

from __future__ import annotations

import time

import pytest

from tests.fixtures.worker import RunningWorker
from tests.reliability.conftest import (
    SLOW_SPEC,
    TINY_SPEC,
    api_for,
    dropped_deliveries,
    job_of,
    uninterrupted_metrics,
    wait_until,
)

pytestmark = pytest.mark.service

CANCEL_WITHIN_SECONDS = 2.0
# Far more steps than it gets to train before it is cancelled. Its metrics at the steps it reaches are
# those of SLOW_SPEC at the same steps (nothing a step computes depends on the step budget).
LONG_SPEC = {**SLOW_SPEC, "steps": 5000, "checkpoint_every": 0}


def test_a_queued_job_never_starts_and_a_running_one_stops_within_two_seconds(
    running_worker: RunningWorker,
) -> None:
    worker = running_worker
    reference = uninterrupted_metrics(SLOW_SPEC)
    with api_for(worker) as client:
        running_id = client.post("/v1/jobs", json=LONG_SPEC).json()["id"]
        wait_until(
            lambda: (view := job_of(worker, running_id)).progress is not None and view.progress.step >= 20,
            60,
            "the long job to train",
            worker.log,
        )
        queued_id = client.post("/v1/jobs", json=TINY_SPEC).json()["id"]  # waits for the busy worker
        cancelled_queued = client.post(f"/v1/jobs/{queued_id}/cancel")

        requested_at = time.monotonic()
        cancelled_running = client.post(f"/v1/jobs/{running_id}/cancel")
        wait_until(
            lambda: client.get(f"/v1/jobs/{running_id}").json()["status"] == "cancelled",
            10,
            "the running job to stop",
            worker.log,
        )
        stopped_after = time.monotonic() - requested_at

        # The worker is free again and reaches the queued job's message: it must drop it.
        wait_until(
            lambda: dropped_deliveries(worker, queued_id), 30, "the cancelled job's delivery", worker.log
        )
        running = client.get(f"/v1/jobs/{running_id}").json()
        queued = client.get(f"/v1/jobs/{queued_id}").json()
        running_series = client.get(f"/v1/jobs/{running_id}/metrics", params={"max_points": 10_000}).json()
        queued_series = client.get(f"/v1/jobs/{queued_id}/metrics").json()

    assert cancelled_queued.status_code == 202 and cancelled_queued.json()["status"] == "cancelled"
    assert (queued["status"], queued["started_at"], queued["attempts"]) == ("cancelled", None, 0)
    assert dropped_deliveries(worker, queued_id) == ["finished"]
    assert all(series["steps"] == [] for series in queued_series["series"].values())

    assert cancelled_running.status_code == 202
    assert stopped_after < CANCEL_WITHIN_SECONDS, f"stopped {stopped_after:.2f} s after the request"
    assert (running["status"], running["error"], running["attempts"]) == ("cancelled", None, 1)
    stopped_at_step = running["progress"]["step"]
    assert 20 <= stopped_at_step < LONG_SPEC["steps"] and running["finished_at"] is not None
    # Its metrics are kept: every evaluation up to where it stopped, with the values of a full run.
    for name, series in running_series["series"].items():
        evaluated = list(range(10, stopped_at_step + 1, 10))
        assert series["steps"] == evaluated, name
        reference_steps, reference_values = reference[name]
        expected = dict(zip(reference_steps, reference_values, strict=True))
        assert all(
            series["values"][i] == expected[step] for i, step in enumerate(evaluated) if step in expected
        )
