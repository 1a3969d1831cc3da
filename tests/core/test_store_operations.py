"""The counts `/metrics` reads: jobs by status and spec device, and the summed training rate of the running
jobs, on both databases."""

from __future__ import annotations

import pytest

from core.store import JobCount, Store
from tests.core.test_store import make_spec


def test_jobs_are_counted_by_status_and_device(store: Store) -> None:
    cpu_jobs = [store.create_job(make_spec(device="cpu")) for _ in range(3)]
    store.create_job(make_spec(device="cuda"))
    store.create_job(make_spec(device="auto"))
    store.request_cancel(cpu_jobs[0].id)
    assert sorted(store.job_counts(), key=lambda count: (count.status, count.device)) == [
        JobCount("cancelled", "cpu", 1),
        JobCount("queued", "auto", 1),
        JobCount("queued", "cpu", 2),
        JobCount("queued", "cuda", 1),
    ]


def test_the_training_rate_sums_the_running_jobs_only(store: Store) -> None:
    assert store.training_model_steps_per_second() == 0.0
    running, other, finished = (store.create_job(make_spec()) for _ in range(3))
    for job, rate in ((running, 120.0), (other, 30.5), (finished, 1000.0)):
        owner = f"worker-{job.id[:6]}"
        assert store.acquire_lease(job.id, owner, lease_seconds=60).acquired
        store.set_progress(job.id, 10, 100, rate, owner=owner)
    assert store.finish_job(finished.id, f"worker-{finished.id[:6]}", "succeeded")
    assert store.training_model_steps_per_second() == pytest.approx(150.5)
