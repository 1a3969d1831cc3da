"""A job past its time limit, or one whose training raises (out of memory included), ends failed with a
message saying why, and the worker takes the next job; so does a job stuck past Celery's hard time limit.

Three workers of their own (PostgreSQL + the session's private Redis, each on a Redis database number of
its own), each with a 4 s job time limit: one with a memory ceiling on its pool process (and Celery's limits
a minute later); another with no soft limit and Celery's hard limit 2 s later; a third with Celery's soft
limit 2 s later. (The stuck job needs more memory than the ceiling leaves: the soft limit cannot share the
first worker.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from core.spec import JobSpec
from tests.fixtures.databases import postgres_available
from tests.fixtures.requirements import require
from tests.fixtures.stores import MigratedTemplates
from tests.fixtures.worker import RedisServer, RunningWorker, start_worker
from tests.reliability.conftest import (
    SLOW_SPEC,
    TINY_SPEC,
    discard_worker,
    is_running,
    job_of,
    lease_pid,
    wait_until,
)
from worker.delivery import TIME_LIMIT_EXCEEDED
from worker.tasks import KILLED_AT_HARD_TIME_LIMIT

pytestmark = pytest.mark.service

# Every job's deadline. Long enough for the overlong job to store some evaluations before it is stopped
# (it evaluates every 20 steps, well under a second on a busy machine).
TIME_LIMIT_SECONDS = 4
# Room for the pool process with torch loaded and a small job (measured: 1.2 GiB of address space), well
# below what OUT_OF_MEMORY_SPEC's first training step asks for (2.3 GiB).
MEMORY_LIMIT_MB = 1792
# Every field within the spec's caps: 256 channels of 8×8 maps on a batch of 4096 need 256 MiB per
# activation, several of them at once.
OUT_OF_MEMORY_SPEC = {
    **TINY_SPEC,
    "architecture": {"kind": "cnn", "channels": [256, 256, 256], "activation": "relu"},
    "batch_size": 4096,
    "steps": 2,
    "eval_every": 1,
}
# Fifty times the slow job's steps: minutes of training, stopped by the time limit.
OVERLONG_SPEC = {**SLOW_SPEC, "steps": 10_000, "eval_every": 20, "checkpoint_every": 0}
# The backstop worker's Celery hard limit comes this long after the deadline (no soft limit, whose
# exception would end the task before the hard limit does).
HARD_LIMIT_GRACE_SECONDS = 2
# The soft-limit worker's: Celery's soft limit 2 s after the deadline, its hard limit far beyond.
SOFT_LIMIT_GRACE_SECONDS = 2
# Within the caps, and valid: each step is hundreds of GFLOP (seconds on one thread), and the deadline
# is only checked between stretches of 8 steps, so it trains on, past the deadline, into the hard limit,
# as a job stuck inside one step would. Many layers of 9 GFLOP kernels rather than a few of 34: Celery's
# soft limit is raised only once the current kernel returns, within a second even on a loaded machine.
STUCK_IN_A_STRETCH_SPEC = {
    **TINY_SPEC,
    "architecture": {"kind": "mlp", "hidden": [1024] * 10, "activation": "relu"},
    "batch_size": 4096,
    "steps": 100,
}


@contextmanager
def worker_with_limits(
    tmp_path_factory: pytest.TempPathFactory,
    private_redis: RedisServer,
    migrated_templates: MigratedTemplates,
    redis_database: int,
    **environment: str,
) -> Iterator[RunningWorker]:
    """A worker of its own (a migrated PostgreSQL database of the session's pool, Redis database
    `redis_database` of the session's private server) started with the settings in `environment`;
    discarded afterwards."""
    require(postgres_available(), "PostgreSQL at 127.0.0.1:5432")
    database = migrated_templates.lend_postgres()
    worker: RunningWorker | None = None
    try:
        worker = start_worker(
            database[1],
            private_redis.url.rsplit("/", 1)[0] + f"/{redis_database}",
            tmp_path_factory.mktemp(f"limited-worker-{redis_database}") / "worker.log",
            **environment,
        )
        yield worker
    finally:
        if worker is not None:
            discard_worker(worker)
        migrated_templates.give_back(database)


@pytest.fixture(scope="module")
def limited_worker(
    tmp_path_factory: pytest.TempPathFactory,
    private_redis: RedisServer,
    migrated_templates: MigratedTemplates,
) -> Iterator[RunningWorker]:
    """The deadline and a memory ceiling (Celery's limits a minute after the deadline, by default)."""
    with worker_with_limits(
        tmp_path_factory,
        private_redis,
        migrated_templates,
        1,
        BNLAB_JOB_SOFT_TIME_LIMIT_SECONDS=str(TIME_LIMIT_SECONDS),
        BNLAB_WORKER_MEMORY_LIMIT_MB=str(MEMORY_LIMIT_MB),
    ) as worker:
        yield worker


@pytest.fixture(scope="module")
def backstop_worker(
    tmp_path_factory: pytest.TempPathFactory,
    private_redis: RedisServer,
    migrated_templates: MigratedTemplates,
) -> Iterator[RunningWorker]:
    with worker_with_limits(
        tmp_path_factory,
        private_redis,
        migrated_templates,
        2,
        BNLAB_JOB_SOFT_TIME_LIMIT_SECONDS=str(TIME_LIMIT_SECONDS),
        BNLAB_CELERY_SOFT_TIME_LIMIT_GRACE_SECONDS="0",
        BNLAB_CELERY_HARD_TIME_LIMIT_GRACE_SECONDS=str(HARD_LIMIT_GRACE_SECONDS),
    ) as worker:
        yield worker


@pytest.fixture(scope="module")
def soft_limit_worker(
    tmp_path_factory: pytest.TempPathFactory,
    private_redis: RedisServer,
    migrated_templates: MigratedTemplates,
) -> Iterator[RunningWorker]:
    with worker_with_limits(
        tmp_path_factory,
        private_redis,
        migrated_templates,
        3,
        BNLAB_JOB_SOFT_TIME_LIMIT_SECONDS=str(TIME_LIMIT_SECONDS),
        BNLAB_CELERY_SOFT_TIME_LIMIT_GRACE_SECONDS=str(SOFT_LIMIT_GRACE_SECONDS),
        BNLAB_CELERY_HARD_TIME_LIMIT_GRACE_SECONDS="60",
    ) as worker:
        yield worker


def test_a_job_stuck_past_the_soft_time_limit_fails_and_the_same_pool_process_takes_the_next(
    soft_limit_worker: RunningWorker,
) -> None:
    """Celery's soft limit raises inside the stuck task: the job fails "time limit exceeded" at the soft
    limit, long before the hard one, and its pool process lives on to train the next job."""
    worker = soft_limit_worker
    first = worker.wait_for(worker.submit(JobSpec.model_validate(TINY_SPEC)).id)
    assert (first.status, first.error) == ("succeeded", None)
    stuck = worker.submit(JobSpec.model_validate(STUCK_IN_A_STRETCH_SPEC))
    following = worker.submit(JobSpec.model_validate(TINY_SPEC))

    failed = worker.wait_for(stuck.id, timeout=60)
    assert (failed.status, failed.error) == ("failed", TIME_LIMIT_EXCEEDED)
    assert failed.summary is None  # Celery's exception ended the run: no summary, unlike at the deadline
    assert failed.started_at is not None and failed.finished_at is not None
    ran_seconds = (failed.finished_at - failed.started_at).total_seconds()
    soft_limit = TIME_LIMIT_SECONDS + SOFT_LIMIT_GRACE_SECONDS
    # The exception is raised once the step's current kernel returns to Python (under a second here).
    assert soft_limit - 0.5 <= ran_seconds < soft_limit + 5

    finished = worker.wait_for(following.id)
    assert (finished.status, finished.error) == ("succeeded", None)
    assert lease_pid(finished) == lease_pid(failed)  # the same pool process: nothing was killed
    assert job_of(worker, stuck.id).attempts == 1


def test_a_job_stuck_past_the_hard_time_limit_is_killed_fails_and_the_worker_takes_the_next(
    backstop_worker: RunningWorker,
) -> None:
    worker = backstop_worker
    # The job before the stuck one trains within its 4 s deadline however long its fresh pool process took
    # to load torch (seconds on a busy machine): the deadline counts from the start of training.
    first = worker.wait_for(worker.submit(JobSpec.model_validate(TINY_SPEC)).id)
    assert (first.status, first.error) == ("succeeded", None)
    stuck = worker.submit(JobSpec.model_validate(STUCK_IN_A_STRETCH_SPEC))
    following = worker.submit(JobSpec.model_validate(TINY_SPEC))

    failed = worker.wait_for(stuck.id, timeout=60)
    assert (failed.status, failed.error) == ("failed", KILLED_AT_HARD_TIME_LIMIT)
    assert failed.error.startswith("time limit exceeded")
    assert failed.started_at is not None and failed.finished_at is not None
    ran_seconds = (failed.finished_at - failed.started_at).total_seconds()
    hard_limit = TIME_LIMIT_SECONDS + HARD_LIMIT_GRACE_SECONDS
    assert hard_limit - 0.5 <= ran_seconds < hard_limit + 3
    killed_pid = lease_pid(failed)
    wait_until(lambda: not is_running(killed_pid), 15, "the pool process to be killed", worker.log)

    finished = worker.wait_for(following.id)
    assert (finished.status, finished.error) == ("succeeded", None)
    assert lease_pid(finished) != lease_pid(failed)  # on the pool process that replaced it
    assert job_of(worker, stuck.id).attempts == 1  # failed once, not trained again


def test_a_job_past_its_time_limit_fails_and_the_worker_takes_the_next(limited_worker: RunningWorker) -> None:
    worker = limited_worker
    overlong = worker.submit(JobSpec.model_validate(OVERLONG_SPEC))
    following = worker.submit(JobSpec.model_validate(TINY_SPEC))

    failed = worker.wait_for(overlong.id, timeout=60)
    assert (failed.status, failed.error) == ("failed", "time limit exceeded")
    assert failed.started_at is not None and failed.finished_at is not None
    ran_seconds = (failed.finished_at - failed.started_at).total_seconds()
    assert TIME_LIMIT_SECONDS <= ran_seconds < TIME_LIMIT_SECONDS + 3
    # Stopped by its deadline between steps: the run ends with a summary (an exception leaves none).
    assert failed.summary is not None
    assert failed.progress is not None and 0 < failed.progress.step < OVERLONG_SPEC["steps"]
    steps, _ = worker.store.read_metrics(overlong.id, ["val_accuracy"], 10_000)["val_accuracy"]
    assert steps and steps[-1] <= failed.progress.step  # what it trained before the limit is kept

    assert worker.wait_for(following.id).status == "succeeded"


def test_a_job_that_runs_out_of_memory_fails_with_the_message_and_the_worker_takes_the_next(
    limited_worker: RunningWorker,
) -> None:
    worker = limited_worker
    too_big = worker.submit(JobSpec.model_validate(OUT_OF_MEMORY_SPEC))
    following = worker.submit(JobSpec.model_validate(TINY_SPEC))

    failed = worker.wait_for(too_big.id, timeout=60)
    assert failed.status == "failed"
    assert failed.error is not None and re.search(r"not enough memory|can't allocate memory", failed.error)
    assert job_of(worker, too_big.id).attempts == 1  # failed, not retried

    finished = worker.wait_for(following.id)
    assert (finished.status, finished.error) == ("succeeded", None)
    # The same pool process trained the next job: the failure cost the job, not the worker.
    assert finished.lease_owner is not None and failed.lease_owner is not None
    assert finished.lease_owner.split(":")[1] == failed.lease_owner.split(":")[1]
