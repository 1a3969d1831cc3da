"""What the reliability tests share: the jobs they run, the metrics of an uninterrupted run, an API in
front of a session worker, and ways to kill and restart a worker.

Everything runs against real processes: the session workers of `tests.fixtures.worker` (PostgreSQL +
private Redis, SQLite + SQLite broker) and the app's own republisher thread.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from core.results import Callbacks, MetricPoint, Result
from core.settings import Settings
from core.spec import JobSpec
from core.store import JobView, MetricSeries
from tests.fixtures.worker import RunningWorker, start_worker

# Long enough to be killed or cancelled mid-way on a loaded 2-core machine (1-4 s on one thread),
# checkpointed every 50 of its 200 steps.
SLOW_SPEC: dict[str, Any] = {
    "architecture": {"kind": "mlp", "hidden": [256, 256, 256], "activation": "sigmoid"},
    "batch_norm": True,
    "learning_rate": 0.1,
    "dropout": 0.0,
    "name": "slow",
    "batch_size": 256,
    "steps": 200,
    "eval_every": 10,
    "checkpoint_every": 50,
    "device": "cpu",
}
TINY_SPEC: dict[str, Any] = {
    "architecture": {"kind": "mlp", "hidden": [16], "activation": "sigmoid"},
    "batch_norm": True,
    "learning_rate": 0.1,
    "dropout": 0.0,
    "name": "tiny",
    "batch_size": 32,
    "steps": 40,
    "eval_every": 10,
    "device": "cpu",
}


def wait_until(condition: Callable[[], Any], timeout: float, what: str, log: Callable[[], str] = str) -> Any:
    """The first truthy value of `condition()`, polled every 20 ms; fails the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}\n{log()[-4000:]}")
        time.sleep(0.02)


@cache
def _uninterrupted_run(spec_json: str) -> tuple[Result, tuple[MetricPoint, ...]]:
    from core.ml import run  # torch only for the tests that compare against a reference run

    points: list[MetricPoint] = []
    result = run(
        JobSpec.model_validate_json(spec_json),
        Callbacks(on_metrics=points.extend),
        settings=Settings(_env_file=None, torch_threads=1),
    )
    return result, tuple(points)


def uninterrupted_run(spec: dict[str, Any]) -> tuple[Result, dict[str, tuple[list[int], list[float]]]]:
    """How `spec` ends and every metric it reports when trained in one go, on one thread like the test
    workers (computed once per spec and test session)."""
    result, points = _uninterrupted_run(json.dumps(spec, sort_keys=True))
    series: dict[str, tuple[list[int], list[float]]] = {}
    for point in sorted(points, key=lambda point: (point.name, point.step)):
        steps, values = series.setdefault(point.name, ([], []))
        steps.append(point.step)
        values.append(point.value)
    return result, series


def uninterrupted_metrics(spec: dict[str, Any]) -> MetricSeries:
    """Every metric of `spec` trained in one go, as the store serves them (non-finite values as None)."""
    _, series = uninterrupted_run(spec)
    return {
        name: (steps, [value if math.isfinite(value) else None for value in values])
        for name, (steps, values) in series.items()
    }


@contextlib.contextmanager
def api_with(settings: Settings) -> Iterator[TestClient]:
    """A client of the API built from `settings`, its republisher thread running while the client is open."""
    app = create_app(settings)
    try:
        with TestClient(app) as client:
            yield client
    finally:
        app.state.store.dispose()


def api_for(worker: RunningWorker) -> contextlib.AbstractContextManager[TestClient]:
    """The API on the worker's database and broker, with the worker's liveness settings (sweep every 1 s)."""
    return api_with(worker.settings)


def job_of(worker: RunningWorker, job_id: str) -> JobView:
    job = worker.store.get_job(job_id)
    assert job is not None, f"job {job_id} is gone"
    return job


def wait_until_finished(worker: RunningWorker, job_id: str, timeout: float, what: str) -> JobView:
    """The job once it has a final status (fails the test, with the worker's log, after `timeout`)."""
    finished: JobView = wait_until(
        lambda: (view := job_of(worker, job_id)).is_terminal and view, timeout, what, worker.log
    )
    return finished


def lease_pid(job: JobView) -> int:
    """The process id of the pool child holding the job's lease (owners are host:pid:suffix)."""
    assert job.lease_owner is not None
    return int(job.lease_owner.split(":")[1])


def kill_pool_child(worker: RunningWorker, job_id: str) -> int:
    """SIGKILL the pool child training `job_id` (the worker's parent lives on and forks a new one)."""
    pid = lease_pid(job_of(worker, job_id))
    assert pid in worker.pool_child_pids(), f"{pid} is not a pool child of the worker"
    os.kill(pid, signal.SIGKILL)
    return pid


def kill_worker_process(worker: RunningWorker) -> list[int]:
    """SIGKILL the worker's main process, as when its machine dies; returns the pids of its pool children
    (Celery has the kernel kill them along with their parent)."""
    children = worker.pool_child_pids()
    os.kill(worker.process.pid, signal.SIGKILL)
    worker.process.wait()
    return children


def is_running(pid: int) -> bool:
    """Whether the process exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def restart_worker(worker: RunningWorker, log_path: Path) -> None:
    """Start a new worker process on the same database and broker in place of a killed one (so the
    session's one worker of this mode lives on for the tests after this one)."""
    assert worker.process.poll() is not None, "restart only a worker that is dead"
    replacement = start_worker(worker.settings.database_url, worker.settings.broker_url, log_path)
    worker.process, worker.log_path = replacement.process, replacement.log_path
    replacement.celery.close()
    replacement.store.dispose()


def discard_worker(worker: RunningWorker) -> None:
    """End a test's own extra worker at once (it is idle: nothing is lost) and release what it holds."""
    worker.discard()


def dropped_deliveries(worker: RunningWorker, job_id: str) -> list[str]:
    """Why the worker dropped deliveries of `job_id`, in order (e.g. fresh_lease, finished)."""
    return re.findall(rf"job {job_id}: delivery dropped \((\w+)\)", worker.log())
