"""A worker killed mid-training costs nobody their results: the republisher finds the job's stale lease, the
job is delivered again, resumes from its last checkpoint and ends with exactly the metrics of a run that
was never interrupted. A job that keeps losing its worker ends failed instead of looping.

Both modes (PostgreSQL + Redis, SQLite + SQLite broker), SIGKILL of the pool child that trains and of
the worker's main process (whose pool child the kernel then kills too), the API's own republisher thread
doing the recovery.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from core.spec import JobSpec
from core.store import JobView, Store
from tests.fixtures.worker import RunningWorker
from tests.reliability.conftest import (
    SLOW_SPEC,
    TINY_SPEC,
    api_for,
    is_running,
    job_of,
    kill_pool_child,
    kill_worker_process,
    lease_pid,
    restart_worker,
    uninterrupted_metrics,
    wait_until,
    wait_until_finished,
)

pytestmark = pytest.mark.service

RECOVERY_TIMEOUT_SECONDS = 90.0


def checkpoint_step(worker: RunningWorker, job_id: str) -> int | None:
    stored = worker.store.load_checkpoint(job_id)
    return None if stored is None else stored[0]


def submit_and_wait_for_a_checkpoint(worker: RunningWorker) -> str:
    uninterrupted_metrics(SLOW_SPEC)  # the reference run, computed before the job starts
    job = worker.submit(JobSpec.model_validate(SLOW_SPEC))
    wait_until(lambda: checkpoint_step(worker, job.id), 60, "a first checkpoint", worker.log)
    return job.id


def resumed_from(worker: RunningWorker, job_id: str) -> list[int]:
    """The checkpoint steps the worker's log says the job resumed from."""
    pattern = rf"job {job_id}: resuming from the checkpoint at step (\d+)"
    return [int(step) for step in re.findall(pattern, worker.log())]


def assert_finished_like_an_uninterrupted_run(worker: RunningWorker, job: JobView) -> None:
    assert (job.status, job.error) == ("succeeded", None)
    assert job.progress is not None and (job.progress.step, job.progress.steps) == (200, 200)
    assert job.finished_at is not None and job.started_at is not None
    # Every (metric, step) of the uninterrupted run, with its value, and nothing else.
    assert worker.store.read_metrics(job.id, None, 10_000) == uninterrupted_metrics(SLOW_SPEC)


def test_a_job_whose_pool_child_is_killed_resumes_from_its_checkpoint_with_the_uninterrupted_metrics(
    running_worker: RunningWorker,
) -> None:
    with api_for(running_worker):
        job_id = submit_and_wait_for_a_checkpoint(running_worker)
        killed = kill_pool_child(running_worker, job_id)
        killed_at_checkpoint = checkpoint_step(running_worker, job_id)
        finished = wait_until_finished(
            running_worker, job_id, RECOVERY_TIMEOUT_SECONDS, "the job to finish after its pool child died"
        )

    assert lease_pid(finished) != killed
    assert (finished.attempts, finished.lease_losses) == (2, 1)
    assert resumed_from(running_worker, job_id) == [killed_at_checkpoint]  # not from step 0
    assert_finished_like_an_uninterrupted_run(running_worker, finished)


def test_a_job_whose_worker_process_is_killed_resumes_on_a_restarted_worker(
    running_worker: RunningWorker, tmp_path: Path
) -> None:
    with api_for(running_worker):
        job_id = submit_and_wait_for_a_checkpoint(running_worker)
        pool_children = kill_worker_process(running_worker)
        wait_until(
            lambda: not any(is_running(pid) for pid in pool_children), 10, "the pool child to die with it"
        )
        killed_at_checkpoint = checkpoint_step(running_worker, job_id)
        assert job_of(running_worker, job_id).status == "running"  # nobody knows yet that it died

        restart_worker(running_worker, tmp_path / "restarted-worker.log")
        finished = wait_until_finished(
            running_worker, job_id, RECOVERY_TIMEOUT_SECONDS, "the job to finish on the restarted worker"
        )

    assert (finished.attempts, finished.lease_losses) == (2, 1)
    assert resumed_from(running_worker, job_id) == [killed_at_checkpoint]
    assert_finished_like_an_uninterrupted_run(running_worker, finished)


def test_a_job_that_loses_its_worker_three_times_fails_instead_of_looping(
    postgres_redis_worker: RunningWorker,
) -> None:
    worker = postgres_redis_worker
    with api_for(worker):
        job = worker.submit(JobSpec.model_validate({**SLOW_SPEC, "checkpoint_every": 0}))
        killed: list[int] = []
        for _ in range(3):  # each delivery that takes the lease is killed at once
            leased: JobView = wait_until(
                lambda: (
                    (view := job_of(worker, job.id)).lease_owner is not None
                    and lease_pid(view) not in killed
                    and view
                ),
                RECOVERY_TIMEOUT_SECONDS,
                "a new delivery of the job to take its lease",
                worker.log,
            )
            killed.append(kill_pool_child(worker, leased.id))
        failed = wait_until_finished(worker, job.id, RECOVERY_TIMEOUT_SECONDS, "the job to fail")

    assert (failed.status, failed.error) == ("failed", "worker lost 3 times")
    assert (failed.attempts, failed.lease_losses) == (3, 3)
    assert failed.finished_at is not None


def test_a_worker_that_dies_before_its_first_heartbeat_is_found_though_its_publication_was_recorded_later(
    store: Store,
) -> None:
    """Found by the test above when the job was quick: on Redis a worker often takes the lease before the
    submit path records the publication, so the publication time is later than the lease's only
    heartbeat. The republisher took that for a republication and left the dead job running for an hour."""
    lease_seconds = 0.5
    job = store.create_job(JobSpec.model_validate(TINY_SPEC))
    assert store.acquire_lease(job.id, "fast-worker", lease_seconds).acquired  # the worker got it first
    store.mark_enqueued(job.id)  # the publisher records it afterwards
    time.sleep(lease_seconds + 0.2)  # the worker died before its first heartbeat

    [stale] = store.stale_running_jobs(lease_seconds)
    assert stale.job_id == job.id
    assert store.claim_republish(stale)
    assert store.stale_running_jobs(lease_seconds) == []  # sent again once, not at every sweep
