"""The worker registry with real workers: a worker appears with its queues and device and is seen again
within a heartbeat, names the job it trains, and ages out once killed; a worker that believes it has a
GPU (BNLAB_WORKER_DEVICE_KIND=cuda) says so."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.devices import DECLARED_CUDA_NAME, cpu_model_name
from core.spec import JobSpec
from core.store import WorkerView
from tests.fixtures.worker import RedisServer, RunningWorker, start_worker
from tests.reliability.conftest import SLOW_SPEC, api_for, wait_until

pytestmark = pytest.mark.service

APPEAR_TIMEOUT_SECONDS = 60.0  # the device probe imports torch in a child process: seconds on a busy machine


def _worker_of(worker: RunningWorker) -> WorkerView | None:
    """The registry's live row of `worker`'s process."""
    listed = worker.store.list_workers(worker.settings.lease_seconds)
    return next((row for row in listed if row.pid == worker.process.pid), None)


def test_a_worker_appears_with_its_queues_and_device_and_names_the_job_it_trains(
    postgres_redis_worker: RunningWorker,
) -> None:
    worker = postgres_redis_worker
    registered = wait_until(
        lambda: _worker_of(worker), APPEAR_TIMEOUT_SECONDS, "the worker's row", worker.log
    )
    assert registered.alive and registered.queues == ["cpu", "default"]
    assert registered.name.startswith("bnlab-test-")
    assert registered.device["kind"] == "cpu" and registered.device["name"] == cpu_model_name()
    assert registered.device["threads"] == 1 and registered.device["count"] == os.cpu_count()
    assert registered.training is None

    # Seen again within a heartbeat (0.5 s), with a margin for a loaded machine.
    wait_until(
        lambda: (seen := _worker_of(worker)) and seen.last_seen > registered.last_seen,
        2.0,
        "a newer last_seen",
        worker.log,
    )

    job = worker.submit(JobSpec.model_validate({**SLOW_SPEC, "steps": 5000, "checkpoint_every": 0}))
    try:
        training = wait_until(
            lambda: (seen := _worker_of(worker)) and seen.training,
            60,
            "the worker to name the job it trains",
            worker.log,
        )
        assert (training.job_ids, training.group_id) == ([job.id], None)
    finally:
        worker.store.request_cancel(job.id)
    worker.wait_for(job.id)
    wait_until(
        lambda: (seen := _worker_of(worker)) and seen.training is None,
        5,
        "the worker to be idle again",
        worker.log,
    )


def test_a_worker_training_a_fused_group_names_the_group_and_its_jobs(
    postgres_redis_worker: RunningWorker,
) -> None:
    worker = postgres_redis_worker
    long_spec = {**SLOW_SPEC, "steps": 5000, "checkpoint_every": 0}
    with api_for(worker) as client:
        created = client.post("/v1/sweeps", json={"base": long_spec, "grid": {}, "seeds": [0, 1]}).json()
        try:
            training = wait_until(
                lambda: (seen := _worker_of(worker)) and seen.training,
                60,
                "the worker to name the group it trains",
                worker.log,
            )
            [group] = client.get(f"/v1/sweeps/{created['id']}").json()["execution"]["fused_groups"]
            assert (training.group_id, training.job_ids) == (group["id"], created["job_ids"])
        finally:
            client.post(f"/v1/sweeps/{created['id']}/cancel")
        for job_id in created["job_ids"]:
            worker.wait_for(job_id)


@pytest.fixture
def gpu_believing_worker(
    private_redis: RedisServer, tmp_path: Path, migrated_postgres_url: str
) -> Iterator[RunningWorker]:
    """A worker on a database and Redis index of its own, consuming `gpu` only, that believes it has a
    GPU (it never gets a job: the queue is its own)."""
    url = migrated_postgres_url
    worker: RunningWorker | None = None
    try:
        broker = private_redis.url.rsplit("/", 1)[0] + "/7"
        worker = start_worker(
            url, broker, tmp_path / "worker.log", queues="gpu", BNLAB_WORKER_DEVICE_KIND="cuda"
        )
        yield worker
    finally:
        if worker is not None:
            worker.stop()


def test_a_killed_worker_ages_out_and_is_listed_as_gone(gpu_believing_worker: RunningWorker) -> None:
    worker = gpu_believing_worker
    lease = worker.settings.lease_seconds
    [registered] = wait_until(
        lambda: worker.store.list_workers(lease), APPEAR_TIMEOUT_SECONDS, "the worker's row", worker.log
    )
    assert registered.queues == ["gpu"]
    assert (registered.device["kind"], registered.device["name"]) == ("cuda", DECLARED_CUDA_NAME)

    os.killpg(worker.process.pid, signal.SIGKILL)
    worker.process.wait()
    wait_until(lambda: worker.store.list_workers(lease) == [], lease + 5, "the killed worker to age out")
    [gone] = worker.store.list_workers(lease, include_gone=True)
    assert (gone.id, gone.alive) == (registered.id, False)


def test_a_worker_stopped_cleanly_is_gone_at_once(gpu_believing_worker: RunningWorker) -> None:
    worker = gpu_believing_worker
    lease = worker.settings.lease_seconds
    [registered] = wait_until(
        lambda: worker.store.list_workers(lease), APPEAR_TIMEOUT_SECONDS, "the worker's row", worker.log
    )
    os.killpg(worker.process.pid, signal.SIGTERM)  # Celery's warm shutdown, as `docker compose stop` asks
    worker.process.wait(timeout=10)
    # Not alive even by a minute's window: it said it stopped, it did not merely go silent.
    assert worker.store.list_workers(alive_seconds=60) == [], "a stopped worker is not left to age out"
    [gone] = worker.store.list_workers(alive_seconds=60, include_gone=True)
    assert (gone.id, gone.alive) == (registered.id, False)
