"""The Celery tasks: thin wrappers that hand a job id to `worker.training`, or a fused group's job ids to
`worker.groups` (the task re-reads the world)."""

from __future__ import annotations

import os

from celery import Celery, Task
from sqlalchemy.exc import OperationalError

from core.queue import TRAIN_GROUP_TASK, TRAIN_TASK
from core.settings import Settings
from core.store import Store
from worker.groups import train_group
from worker.training import train_job

DATABASE_RETRY_SECONDS = 5
DATABASE_RETRIES = 60  # five minutes of an unreachable database, then the sweeper takes over

_stores: dict[tuple[str, int], Store] = {}


def store_for(settings: Settings) -> Store:
    """This process's store (a pool child must not reuse connections opened before the fork)."""
    key = (settings.database_url, os.getpid())
    if key not in _stores:
        _stores[key] = Store.from_settings(settings)
    return _stores[key]


def register_tasks(app: Celery, settings: Settings) -> None:
    @app.task(name=TRAIN_TASK, bind=True, max_retries=DATABASE_RETRIES)
    def train(task: Task, job_id: str) -> None:
        try:
            train_job(store_for(settings), job_id, settings)
        except OperationalError as error:
            # The database is unreachable: this delivery cannot even take the lease. Try again later.
            raise task.retry(exc=error, countdown=DATABASE_RETRY_SECONDS) from error

    @app.task(name=TRAIN_GROUP_TASK, bind=True, max_retries=DATABASE_RETRIES)
    def train_fused_group(task: Task, job_ids: list[str]) -> None:
        try:
            train_group(store_for(settings), job_ids, settings)
        except OperationalError as error:
            raise task.retry(exc=error, countdown=DATABASE_RETRY_SECONDS) from error
