"""The worker registry on both databases: a registered worker is listed with what it said, a heartbeat
keeps it alive and says what it trains, a silent or stopped one is gone (and listed only when asked)."""

from __future__ import annotations

import time

from core.store import Store, WorkerTraining
from core.store.workers import new_worker_id

GPU = {"kind": "cuda", "name": "NVIDIA H200", "count": 1, "memory_mb": 143771, "threads": 1}
CPU = {"kind": "cpu", "name": "AMD EPYC", "count": 2, "memory_mb": 8000, "threads": 1}


def _register(store: Store, host: str, queues: list[str], device: dict[str, object]) -> str:
    worker_id = new_worker_id()
    store.register_worker(worker_id, f"celery@{host}", host, 4242, queues, device)
    return worker_id


def test_a_registered_worker_is_listed_alive_with_its_queues_and_device(store: Store) -> None:
    worker_id = _register(store, "gpu-node", ["default", "gpu"], GPU)

    [worker] = store.list_workers(alive_seconds=60)
    assert (worker.id, worker.host, worker.name, worker.pid) == (
        worker_id,
        "gpu-node",
        "celery@gpu-node",
        4242,
    )
    assert (worker.queues, worker.device, worker.training, worker.alive) == (
        ["default", "gpu"],
        GPU,
        None,
        True,
    )
    assert worker.last_seen >= worker.started_at


def test_a_heartbeat_refreshes_last_seen_and_says_what_the_worker_trains(store: Store) -> None:
    worker_id = _register(store, "node", ["cpu", "default"], CPU)
    [before] = store.list_workers(alive_seconds=60)
    time.sleep(0.01)

    assert store.worker_heartbeat(worker_id, WorkerTraining(["a" * 32, "b" * 32], "c" * 32))
    [during] = store.list_workers(alive_seconds=60)
    assert during.last_seen > before.last_seen
    assert during.training == WorkerTraining(["a" * 32, "b" * 32], "c" * 32)

    assert store.worker_heartbeat(worker_id, None)
    assert store.list_workers(alive_seconds=60)[0].training is None
    assert not store.worker_heartbeat(new_worker_id(), None)  # a row that is not there: register again


def test_silent_and_stopped_workers_are_gone_and_listed_last_on_request(store: Store) -> None:
    silent = _register(store, "a-silent", ["cpu", "default"], CPU)
    stopped = _register(store, "b-stopped", ["cpu", "default"], CPU)
    time.sleep(0.3)
    live = _register(store, "c-live", ["default", "gpu"], GPU)
    store.worker_stopped(stopped)

    assert [worker.id for worker in store.list_workers(alive_seconds=0.2)] == [live]
    listed = store.list_workers(alive_seconds=0.2, include_gone=True)
    assert [(worker.id, worker.alive) for worker in listed] == [
        (live, True),
        (silent, False),
        (stopped, False),
    ]
    assert store.live_worker_devices(alive_seconds=0.2) == [(["default", "gpu"], GPU)]
