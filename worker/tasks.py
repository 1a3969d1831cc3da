"""The Celery tasks: thin wrappers that hand a job id to `worker.training`, or a fused group's job ids to
`worker.fused_groups` (the task re-reads the world).

Their request class fails the jobs a task held when Celery's hard time limit kills its pool process: the
task never returns then, and its jobs would otherwise stay `running` until their leases went stale, and
be trained again, and killed again, until they had lost their worker `max_lease_losses` times.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery, Task
from celery.worker import state as worker_state
from celery.worker.request import Request
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from core.queue import TRAIN_GROUP_TASK, TRAIN_TASK
from core.settings import Settings
from core.store import Store, StoreInterface
from worker.delivery import TIME_LIMIT_EXCEEDED, owner_prefix
from worker.fused_groups import train_group
from worker.training import train_job

logger = logging.getLogger(__name__)

DATABASE_RETRY_SECONDS = 5
DATABASE_RETRIES = 60  # five minutes of an unreachable database, then the republisher takes over
KILLED_AT_HARD_TIME_LIMIT = (
    f"{TIME_LIMIT_EXCEEDED} (still running at the hard limit: its worker process was killed)"
)

_stores: dict[tuple[str, int], StoreInterface] = {}


def store_for(settings: Settings) -> StoreInterface:
    """This process's store (a pool child must not reuse connections opened before the fork)."""
    key = (settings.database_url, os.getpid())
    if key not in _stores:
        _stores[key] = Store.from_settings(settings)
    return _stores[key]


def fail_jobs_of_killed_process(settings: Settings, job_ids: list[str], pid: int) -> list[str]:
    """Fail the jobs among `job_ids` that the killed pool process `pid` still held; the ids failed.

    Runs in the worker's parent process, which forks pool processes: it uses a store of its own, closed at
    once, so that no pool process inherits its connections. When the database cannot be reached, the
    leases go stale and the republisher finds the jobs instead.
    """
    store = Store.from_settings(settings)
    try:
        return store.fail_jobs_leased_by(job_ids, owner_prefix(pid), KILLED_AT_HARD_TIME_LIMIT)
    except SQLAlchemyError:
        logger.exception("could not fail the jobs %s of the killed pool process %d", job_ids, pid)
        return []
    finally:
        store.dispose()


def request_class(settings: Settings) -> type[Request]:
    """The Celery request class of the training tasks (see the module docstring)."""

    class TrainingRequest(Request):
        def on_timeout(self, soft: bool, timeout: Any) -> None:
            super().on_timeout(soft, timeout)
            # At a cold shutdown Celery kills running tasks too: their jobs are resumed elsewhere.
            if soft or worker_state.should_terminate or self.worker_pid is None:
                return
            job_ids = list(self.args[0]) if self.name == TRAIN_GROUP_TASK else [self.args[0]]
            failed = fail_jobs_of_killed_process(settings, job_ids, self.worker_pid)
            logger.error("hard time limit: pool process %d killed, jobs failed: %s", self.worker_pid, failed)

    return TrainingRequest


def register_tasks(app: Celery, settings: Settings) -> None:
    """The two training tasks. Each returns what became of its jobs ("job …: failed"): Celery's log line
    for a task that returned says "succeeded" whatever the job's status, and then shows that text."""
    training_request = request_class(settings)

    @app.task(name=TRAIN_TASK, bind=True, max_retries=DATABASE_RETRIES, Request=training_request)
    def train(task: Task, job_id: str) -> str:
        try:
            return str(train_job(store_for(settings), job_id, settings))
        except OperationalError as error:
            # The database is unreachable: this delivery cannot even take the lease. Try again later.
            raise task.retry(exc=error, countdown=DATABASE_RETRY_SECONDS) from error

    @app.task(name=TRAIN_GROUP_TASK, bind=True, max_retries=DATABASE_RETRIES, Request=training_request)
    def train_fused_group(task: Task, job_ids: list[str]) -> str:
        try:
            return "; ".join(
                str(delivery) for delivery in train_group(store_for(settings), job_ids, settings)
            )
        except OperationalError as error:
            raise task.retry(exc=error, countdown=DATABASE_RETRY_SECONDS) from error
