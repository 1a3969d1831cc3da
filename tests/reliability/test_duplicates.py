"""A job delivered twice at once is trained once: two real workers on the same broker each get a copy,
one takes the lease, the other finds it fresh and drops its copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.spec import JobSpec
from tests.fixtures.worker import RunningWorker, start_worker
from tests.reliability.conftest import (
    SLOW_SPEC,
    discard_worker,
    dropped_deliveries,
    uninterrupted_metrics,
    wait_until_finished,
)

pytestmark = pytest.mark.service


def test_the_same_job_published_twice_at_once_is_trained_once(
    postgres_redis_worker: RunningWorker, tmp_path: Path
) -> None:
    first = postgres_redis_worker
    second = start_worker(first.settings.database_url, first.settings.broker_url, tmp_path / "second.log")
    try:
        job = first.store.create_job(JobSpec.model_validate(SLOW_SPEC))
        first.publish(job.id)
        first.publish(job.id)  # one copy for each idle worker (each takes one message at a time)
        finished = wait_until_finished(first, job.id, 90, "the job to finish")
    finally:
        discard_worker(second)

    assert (finished.status, finished.attempts, finished.lease_losses) == ("succeeded", 1, 0)
    # Exactly one copy was dropped, and it was dropped because the other was training at that moment.
    assert dropped_deliveries(first, job.id) + dropped_deliveries(second, job.id) == ["fresh_lease"]
    assert first.store.read_metrics(job.id, None, 10_000) == uninterrupted_metrics(SLOW_SPEC)
