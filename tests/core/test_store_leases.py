"""Leases, heartbeats, the final status and checkpoints, on both databases.

A lease of 0 s is stale as soon as it is taken, which lets the take-over paths run without sleeping.
"""

from __future__ import annotations

import math

from core.results import Summary
from core.store import Store
from tests.core.test_store import make_spec


def test_a_queued_job_is_leased_once(store: Store) -> None:
    job = store.create_job(make_spec())

    first = store.acquire_lease(job.id, "worker-a", lease_seconds=60)
    assert first.acquired and first.outcome == "acquired"
    assert first.job is not None
    assert (first.job.status, first.job.lease_owner, first.job.attempts) == ("running", "worker-a", 1)
    assert first.job.started_at is not None and first.job.heartbeat_at is not None

    duplicate = store.acquire_lease(job.id, "worker-b", lease_seconds=60)
    assert not duplicate.acquired and duplicate.outcome == "fresh_lease"
    assert duplicate.job is not None and duplicate.job.lease_owner == "worker-a"


def test_a_stale_lease_is_taken_over_and_the_old_owner_loses_it(store: Store) -> None:
    job = store.create_job(make_spec())
    store.acquire_lease(job.id, "worker-a", lease_seconds=60)

    taken = store.acquire_lease(job.id, "worker-b", lease_seconds=0)
    assert taken.outcome == "taken_over"
    assert taken.job is not None
    assert (taken.job.lease_owner, taken.job.attempts, taken.job.lease_losses) == ("worker-b", 2, 1)

    assert not store.heartbeat(job.id, "worker-a")
    assert store.heartbeat(job.id, "worker-b")
    assert not store.finish_job(job.id, "worker-a", "succeeded")
    assert store.finish_job(job.id, "worker-b", "succeeded")
    finished = store.get_job(job.id)
    assert finished is not None and finished.status == "succeeded" and finished.finished_at is not None


def test_a_heartbeat_keeps_the_lease_fresh(store: Store) -> None:
    job = store.create_job(make_spec())
    leased = store.acquire_lease(job.id, "worker-a", lease_seconds=60).job
    assert store.heartbeat(job.id, "worker-a")
    renewed = store.get_job(job.id)
    assert leased is not None and renewed is not None
    assert leased.heartbeat_at is not None and renewed.heartbeat_at is not None
    assert renewed.heartbeat_at > leased.heartbeat_at


def test_the_third_lost_lease_fails_the_job(store: Store) -> None:
    job = store.create_job(make_spec())
    store.acquire_lease(job.id, "worker-1", lease_seconds=0)
    assert store.acquire_lease(job.id, "worker-2", lease_seconds=0).outcome == "taken_over"
    assert store.acquire_lease(job.id, "worker-3", lease_seconds=0).outcome == "taken_over"

    last = store.acquire_lease(job.id, "worker-4", lease_seconds=0)
    assert last.outcome == "lost_too_often" and not last.acquired
    assert last.job is not None
    assert (last.job.status, last.job.error, last.job.lease_losses) == ("failed", "worker lost 3 times", 3)
    assert store.acquire_lease(job.id, "worker-5", lease_seconds=0).outcome == "finished"


def test_the_jobs_of_a_killed_process_are_failed_and_no_other(store: Store) -> None:
    killed, finished, elsewhere, same_pid_on_another_host = (store.create_job(make_spec()) for _ in range(4))
    store.acquire_lease(killed.id, "host_1:42:aaaa", lease_seconds=60)
    store.acquire_lease(finished.id, "host_1:42:bbbb", lease_seconds=60)
    assert store.finish_job(finished.id, "host_1:42:bbbb", "succeeded")
    store.acquire_lease(elsewhere.id, "host_1:421:cccc", lease_seconds=60)
    store.acquire_lease(same_pid_on_another_host.id, "hostx1:42:dddd", lease_seconds=60)  # `_` is no wildcard
    ids = [killed.id, finished.id, elsewhere.id, same_pid_on_another_host.id]

    assert store.fail_jobs_leased_by(ids, "host_1:42:", "time limit exceeded") == [killed.id]

    jobs = [store.get_job(job_id) for job_id in ids]
    assert [(job.status, job.error) for job in jobs if job] == [
        ("failed", "time limit exceeded"),
        ("succeeded", None),
        ("running", None),
        ("running", None),
    ]
    assert store.fail_jobs_leased_by(ids, "host_1:42:", "again") == []  # already failed: left as it is


def test_a_stale_job_with_a_cancel_request_ends_cancelled(store: Store) -> None:
    job = store.create_job(make_spec())
    store.acquire_lease(job.id, "worker-a", lease_seconds=60)
    store.request_cancel(job.id)

    result = store.acquire_lease(job.id, "worker-b", lease_seconds=0)
    assert result.outcome == "cancelled" and not result.acquired
    assert result.job is not None and result.job.status == "cancelled"


def test_leasing_an_unknown_job(store: Store) -> None:
    result = store.acquire_lease("0" * 32, "worker-a", lease_seconds=60)
    assert (result.outcome, result.job) == ("not_found", None)


def test_finishing_records_status_summary_and_device_without_nan(store: Store) -> None:
    job = store.create_job(make_spec())
    store.acquire_lease(job.id, "worker-a", lease_seconds=60)
    store.set_progress(job.id, 20, 20, 850.5)
    summary = Summary(final_train_loss=math.nan, diverged_at_step=7, steps_per_second=math.inf)

    assert store.finish_job(job.id, "worker-a", "diverged", summary=summary, device="cpu")

    finished = store.get_job(job.id)
    assert finished is not None
    assert (finished.status, finished.device, finished.error) == ("diverged", "cpu", None)
    assert finished.summary == Summary(final_train_loss=None, diverged_at_step=7, steps_per_second=None)
    assert finished.progress is not None
    assert (finished.progress.step, finished.progress.steps, finished.progress.steps_per_second) == (
        20,
        20,
        850.5,
    )


def test_failing_keeps_the_message(store: Store) -> None:
    job = store.create_job(make_spec())
    store.acquire_lease(job.id, "worker-a", lease_seconds=60)
    assert store.finish_job(job.id, "worker-a", "failed", error="CUDA is not available")
    failed = store.get_job(job.id)
    assert failed is not None and (failed.status, failed.error) == ("failed", "CUDA is not available")


def test_progress_from_a_worker_that_lost_the_lease_is_ignored(store: Store) -> None:
    job = store.create_job(make_spec())
    store.acquire_lease(job.id, "worker-a", lease_seconds=60)
    store.acquire_lease(job.id, "worker-b", lease_seconds=0)
    store.set_progress(job.id, 5, 20, None, owner="worker-a")
    assert store.get_job(job.id).progress is None  # type: ignore[union-attr]
    store.set_progress(job.id, 5, 20, None, owner="worker-b")
    assert store.get_job(job.id).progress.step == 5  # type: ignore[union-attr]


def test_the_latest_checkpoint_replaces_the_previous_one(store: Store) -> None:
    job = store.create_job(make_spec())
    assert store.load_checkpoint(job.id) is None
    store.save_checkpoint(job.id, 10, b"\x00state at 10")
    store.save_checkpoint(job.id, 20, b"\x00state at 20\xff")
    assert store.load_checkpoint(job.id) == (20, b"\x00state at 20\xff")
