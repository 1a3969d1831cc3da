"""The registry thread of a worker's main process, without Celery: it registers the worker with its queues
and device, writes what the pool trains as soon as that changes (a fused group by its id), and marks the
worker gone when it stops. Both databases."""

from __future__ import annotations

import time
from typing import Any

from core.queue import TRAIN_GROUP_TASK, TRAIN_TASK
from core.settings import Settings
from core.store import Store, WorkerTraining
from tests.core.test_store_fused_groups import fused_sweep
from worker.registry import RunningTask, WorkerRegistration, job_ids_training


def _until(condition: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return value


def test_the_registry_follows_what_the_pool_trains_and_says_when_the_worker_stops(
    store: Store, migrated_database_url: str
) -> None:
    [group] = fused_sweep(store).fused_groups
    running: list[RunningTask] = []
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=migrated_database_url,
        heartbeat_seconds=5.0,  # far longer than the test: changes are written without waiting for it
        worker_device_kind="cpu",
    )
    registration = WorkerRegistration(
        settings, "celery@node", ["default", "cpu"], tasks=lambda: list(running)
    )
    registration.start()
    try:
        [worker] = _until(lambda: store.list_workers(alive_seconds=60))
        assert (worker.id, worker.queues, worker.device["kind"]) == (
            registration.worker_id,
            ["cpu", "default"],
            "cpu",
        )

        running.append((TRAIN_GROUP_TASK, (group.job_ids,)))
        training = _until(lambda: store.list_workers(alive_seconds=60)[0].training)
        assert training == WorkerTraining(group.job_ids, group.id)

        running[:] = [(TRAIN_TASK, (group.job_ids[0],))]
        _until(lambda: store.list_workers(alive_seconds=60)[0].training == WorkerTraining([group.job_ids[0]]))
        running.clear()
        _until(lambda: store.list_workers(alive_seconds=60)[0].training is None)
    finally:
        registration.stop()
    assert store.list_workers(alive_seconds=60) == []
    [gone] = store.list_workers(alive_seconds=60, include_gone=True)
    assert (gone.id, gone.alive, gone.training) == (registration.worker_id, False, None)


def test_only_training_tasks_count() -> None:
    assert job_ids_training([("celery.ping", ()), (TRAIN_TASK, ("a" * 32,))]) == (["a" * 32], False)
    assert job_ids_training([(TRAIN_GROUP_TASK, (["a" * 32, "b" * 32],))]) == (["a" * 32, "b" * 32], True)
    assert job_ids_training([]) is None
