"""Fused sweeps through the running service — the API (with its republisher) under uvicorn and a real Celery
worker, on SQLite + SQLite broker and on PostgreSQL + Redis: groups (MLPs, CNNs, either BN implementation)
train as one task each and every job ends as its separate run would; a cancel stops one model of a running
group; a group whose pool child is killed resumes from the group's checkpoint and ends with the metrics of
an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

import httpx
import pytest

from core.ml.fused import run_fused
from core.results import Callbacks, MetricPoint
from core.settings import Settings
from core.spec import JobSpec
from core.store import JobView, Store
from tests.fixtures.service import RunningService
from tests.fixtures.worker import RunningWorker

pytestmark = pytest.mark.service

TINY_BASE: dict[str, Any] = {
    "architecture": {"kind": "mlp", "hidden": [16, 16], "activation": "sigmoid"},
    "batch_norm": True,
    "learning_rate": 0.5,
    "dropout": 0.0,
    "batch_size": 32,
    "steps": 100,
    "eval_every": 10,
    "telemetry_every": 50,
    "device": "cpu",
}
# Long enough (a few seconds as a group of three on one thread) to act on a group while it trains: a
# cancel takes effect within a heartbeat (0.5 s), with well over half of the steps still to go.
SLOW_BASE: dict[str, Any] = {
    **TINY_BASE,
    "architecture": {"kind": "mlp", "hidden": [64, 64, 64], "activation": "sigmoid"},
    "learning_rate": 0.1,
    "batch_size": 128,
    "steps": 1500,
    "eval_every": 100,
    "telemetry_every": 0,
    "checkpoint_every": 600,
}
# The killed group: killed just after its first checkpoint, it has three quarters of its steps left to
# resume (and the uninterrupted reference run trains them all again, in the test's process).
KILLED_BASE: dict[str, Any] = {**SLOW_BASE, "steps": 1200, "checkpoint_every": 300}
SEEDS = [0, 1, 2]
VAL_LOSS_TOLERANCE = 1e-4
FINISH_TIMEOUT_SECONDS = 90.0


@pytest.fixture(params=["sqlite", "postgres_redis"])
def service(request: pytest.FixtureRequest) -> tuple[RunningService, RunningWorker]:
    """The running API of each mode, with the worker behind it (whose store the tests read too)."""
    running: RunningService = request.getfixturevalue(f"{request.param}_service")
    worker: RunningWorker = request.getfixturevalue(f"{request.param}_worker")
    return running, worker


def submit_sweep(service: RunningService, **body: Any) -> dict[str, Any]:
    response = httpx.post(f"{service.url}/v1/sweeps", json=body, timeout=10)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def sweep_view(service: RunningService, sweep_id: str) -> dict[str, Any]:
    response = httpx.get(f"{service.url}/v1/sweeps/{sweep_id}", timeout=10)
    response.raise_for_status()
    view: dict[str, Any] = response.json()
    return view


def val_loss(service: RunningService, job_id: str) -> tuple[list[int], list[float]]:
    response = httpx.get(f"{service.url}/v1/jobs/{job_id}/metrics", params={"name": "val_loss"}, timeout=10)
    response.raise_for_status()
    series = response.json()["series"]["val_loss"]
    return series["steps"], series["values"]


def wait_until(condition: Callable[[], bool], what: str, service: RunningService) -> None:
    deadline = time.monotonic() + FINISH_TIMEOUT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(
                f"timed out waiting for {what}; worker log:\n{service.worker_log.read_text()[-4000:]}"
            )
        time.sleep(0.1)


def wait_for_sweep(service: RunningService, sweep_id: str) -> dict[str, Any]:
    wait_until(
        lambda: sweep_view(service, sweep_id)["done"] == sweep_view(service, sweep_id)["size"],
        "the sweep",
        service,
    )
    return sweep_view(service, sweep_id)


def pool_pid(job: JobView) -> int:
    """The process that holds the job's lease (owners are host:pid:suffix)."""
    assert job.lease_owner is not None
    return int(job.lease_owner.split(":")[1])


def jobs_of(store: Store, job_ids: list[str]) -> list[JobView]:
    jobs = [store.get_job(job_id) for job_id in job_ids]
    assert all(job is not None for job in jobs)
    return [job for job in jobs if job is not None]


def test_a_fused_sweep_trains_as_groups_and_each_job_ends_as_its_separate_run(
    service: tuple[RunningService, RunningWorker],
) -> None:
    running, worker = service
    sweep = {
        "base": TINY_BASE,
        "grid": {"batch_norm": [True, False], "learning_rate": [0.1, 0.5]},
        "seeds": [0],
    }
    fused = submit_sweep(running, **sweep)
    separate = submit_sweep(running, **sweep, execution="separate")

    fused_view, separate_view = wait_for_sweep(running, fused["id"]), wait_for_sweep(running, separate["id"])

    assert fused_view["status_counts"]["succeeded"] == separate_view["status_counts"]["succeeded"] == 4
    groups = fused_view["execution"]["fused_groups"]
    assert [group["job_ids"] for group in groups] == [
        fused["job_ids"][:2],
        fused["job_ids"][2:],
    ]  # BN on, off
    assert separate_view["execution"]["fused_groups"] == []
    for group in groups:
        # One delivery trained the whole group: one lease owner, one attempt each.
        jobs = jobs_of(worker.store, group["job_ids"])
        assert len({job.lease_owner for job in jobs}) == 1 and {job.attempts for job in jobs} == {1}
    for fused_id, separate_id in zip(fused["job_ids"], separate["job_ids"], strict=True):
        fused_steps, fused_values = val_loss(running, fused_id)
        separate_steps, separate_values = val_loss(running, separate_id)
        assert fused_steps == separate_steps == list(range(10, 101, 10))
        assert fused_values == pytest.approx(separate_values, abs=VAL_LOSS_TOLERANCE)
        fused_job = running.job(fused_id)
        assert fused_job["progress"]["step"] == 100 and fused_job["summary"]["final_val_accuracy"] is not None


def test_a_fused_cnn_sweep_with_either_bn_implementation_ends_as_its_separate_runs(
    service: tuple[RunningService, RunningWorker],
) -> None:
    running, worker = service
    sweep = {
        "base": {
            **TINY_BASE,
            "architecture": {"kind": "cnn", "channels": [4], "activation": "relu"},
            "learning_rate": 0.1,
            "steps": 60,
            "eval_every": 20,
            "telemetry_every": 0,
        },
        "grid": {"bn_implementation": ["torch", "bnlab"], "learning_rate": [0.05, 0.2]},
        "seeds": [0],
    }
    fused = submit_sweep(running, **sweep)
    separate = submit_sweep(running, **sweep, execution="separate")

    fused_view, separate_view = wait_for_sweep(running, fused["id"]), wait_for_sweep(running, separate["id"])

    assert fused_view["status_counts"]["succeeded"] == separate_view["status_counts"]["succeeded"] == 4
    groups = fused_view["execution"]["fused_groups"]
    assert [group["job_ids"] for group in groups] == [fused["job_ids"][:2], fused["job_ids"][2:]]
    for group in groups:
        jobs = jobs_of(worker.store, group["job_ids"])
        assert len({job.lease_owner for job in jobs}) == 1 and {job.attempts for job in jobs} == {1}
    for fused_id, separate_id in zip(fused["job_ids"], separate["job_ids"], strict=True):
        fused_steps, fused_values = val_loss(running, fused_id)
        separate_steps, separate_values = val_loss(running, separate_id)
        assert fused_steps == separate_steps == [20, 40, 60]  # the last one is the final validation loss
        assert fused_values == pytest.approx(separate_values, abs=VAL_LOSS_TOLERANCE)


def test_cancelling_one_job_of_a_running_group_stops_only_its_model(
    service: tuple[RunningService, RunningWorker],
) -> None:
    running, _ = service
    created = submit_sweep(running, base={**SLOW_BASE, "checkpoint_every": 0}, seeds=SEEDS)
    cancelled_id, *others = created["job_ids"]
    wait_until(lambda: (running.job(cancelled_id)["progress"] or {}).get("step", 0) > 0, "training", running)

    response = httpx.post(f"{running.url}/v1/jobs/{cancelled_id}/cancel", timeout=10)
    assert response.status_code == 202
    cancelled = running.wait_for(cancelled_id, frozenset({"cancelled"}), timeout=30)
    still_training = [running.job(job_id)["status"] for job_id in others]
    view = wait_for_sweep(running, created["id"])

    assert still_training == ["running", "running"]  # the others went on after the cancel
    assert 0 < cancelled["progress"]["step"] < SLOW_BASE["steps"]
    assert cancelled["summary"] is not None  # written with the status, not once the group was done
    assert view["status_counts"]["cancelled"] == 1 and view["status_counts"]["succeeded"] == 2
    for job_id in others:
        steps, _ = val_loss(running, job_id)
        assert steps == list(range(100, SLOW_BASE["steps"] + 1, 100))


def uninterrupted_val_losses(specs: list[JobSpec]) -> list[tuple[list[int], list[float]]]:
    """Each job's validation losses in a fused run of the group that nothing interrupts (one thread, as the
    worker trains); computed once per test session for the same specs (names aside: they train nothing)."""
    return _uninterrupted_val_losses(
        tuple(json.dumps(spec.model_dump(mode="json", exclude={"name"}), sort_keys=True) for spec in specs)
    )


@cache
def _uninterrupted_val_losses(spec_jsons: tuple[str, ...]) -> list[tuple[list[int], list[float]]]:
    specs = [JobSpec.model_validate_json(spec_json) for spec_json in spec_jsons]
    recorded: list[list[MetricPoint]] = [[] for _ in specs]
    callbacks = [Callbacks(on_metrics=points.extend) for points in recorded]
    run_fused(specs, callbacks, settings=Settings(_env_file=None, torch_threads=1))  # type: ignore[call-arg]
    losses = []
    for points in recorded:
        val = [point for point in points if point.name == "val_loss"]
        losses.append(([point.step for point in val], [point.value for point in val]))
    return losses


def test_a_group_whose_pool_child_is_killed_resumes_from_its_checkpoint_with_the_uninterrupted_metrics(
    service: tuple[RunningService, RunningWorker],
) -> None:
    running, worker = service
    created = submit_sweep(running, base=KILLED_BASE, seeds=SEEDS)
    [group] = sweep_view(running, created["id"])["execution"]["fused_groups"]
    specs = [job.job_spec() for job in jobs_of(worker.store, group["job_ids"])]
    # The reference run trains on this process's own thread while the worker trains on its one.
    background = ThreadPoolExecutor(max_workers=1)
    reference = background.submit(uninterrupted_val_losses, specs)
    background.shutdown(wait=False)
    wait_until(lambda: worker.store.load_group_checkpoint(group["id"]) is not None, "a checkpoint", running)
    [first] = jobs_of(worker.store, group["job_ids"][:1])
    killed = pool_pid(first)
    assert killed in worker.pool_child_pids()

    os.kill(killed, signal.SIGKILL)
    view = wait_for_sweep(running, created["id"])

    assert view["status_counts"]["succeeded"] == 3
    jobs = jobs_of(worker.store, group["job_ids"])
    assert {(job.attempts, job.lease_losses) for job in jobs} == {(2, 1)}
    assert len({job.lease_owner for job in jobs}) == 1 and pool_pid(jobs[0]) != killed
    for job, (steps, values) in zip(jobs, reference.result(), strict=True):
        stored_steps, stored_values = val_loss(running, job.id)
        assert stored_steps == steps  # every step exists, none missing where the group was killed
        assert stored_values == pytest.approx(values, abs=1e-6)
