"""A real Celery worker process trains published jobs: PostgreSQL + Redis, and SQLite + SQLite broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import Settings
from tests.fixtures.worker import RunningWorker
from tests.worker.test_training import METRICS, tiny_spec

pytestmark = pytest.mark.service


def test_a_published_job_is_trained_and_stored(running_worker: RunningWorker) -> None:
    job = running_worker.submit(tiny_spec(steps=100, eval_every=20, telemetry_every=50))

    finished = running_worker.wait_for(job.id)

    assert (finished.status, finished.error, finished.device, finished.attempts) == (
        "succeeded",
        None,
        "cpu",
        1,
    )
    assert finished.progress is not None and (finished.progress.step, finished.progress.steps) == (100, 100)
    assert finished.summary is not None and finished.summary.final_val_accuracy is not None
    series = running_worker.store.read_metrics(job.id, None, 1000)
    assert set(series) == METRICS
    assert all(steps == [20, 40, 60, 80, 100] for steps, _ in series.values())
    layers = running_worker.store.read_telemetry(job.id)
    assert layers and all(layer.steps == [50, 100] for layer in layers)


def test_a_failing_job_is_failed_with_its_message_and_the_worker_goes_on(
    running_worker: RunningWorker,
) -> None:
    failing = running_worker.submit(tiny_spec(device="cuda"))  # routed to the gpu queue: nobody consumes it
    running_worker.publish(
        failing.id, "cpu"
    )  # delivered to this CPU worker anyway, as a misrouted job could be
    failed = running_worker.wait_for(failing.id)
    assert failed.status == "failed"
    assert failed.error is not None and "CUDA is not available" in failed.error

    next_job = running_worker.submit(tiny_spec(steps=20))
    assert running_worker.wait_for(next_job.id).status == "succeeded"


def test_a_job_delivered_twice_trains_once(running_worker: RunningWorker) -> None:
    job = running_worker.submit(tiny_spec(steps=30))
    running_worker.publish(job.id)

    assert running_worker.wait_for(job.id).status == "succeeded"
    follower = running_worker.submit(tiny_spec(steps=10))  # queued behind the duplicate delivery
    running_worker.wait_for(follower.id)
    assert running_worker.store.get_job(job.id).attempts == 1  # type: ignore[union-attr]


def test_the_pool_process_trains_below_the_api_s_priority_and_the_worker_s_own_process_does_not(
    running_worker: RunningWorker,
) -> None:
    job = running_worker.submit(tiny_spec(steps=20, eval_every=10))
    assert running_worker.wait_for(job.id).status == "succeeded"  # the pool child is up and has trained

    def niceness_of_threads(pid: int) -> set[int]:
        # Field 19 of /proc/PID/task/TID/stat: a nice value is per thread on Linux.
        return {
            int(stat.read_text().rsplit(")", 1)[1].split()[16])
            for stat in Path(f"/proc/{pid}/task").glob("*/stat")
        }

    [child] = running_worker.pool_child_pids()
    assert niceness_of_threads(child) == {Settings().worker_niceness} == {10}  # torch's threads too
    assert niceness_of_threads(running_worker.process.pid) == {0}
