"""Submit → first `progress` event on the job's stream: `python benchmarks/events_latency.py`.

For each mode it starts a private service — the API under uvicorn and one Celery worker (prefork, one
process), as `make run` does — then submits tiny jobs one after another. For each job it opens the event
stream as soon as `POST /v1/jobs` answers (as `bnlab submit --watch` does) and times the first `progress`
event, then reads the stream to its end so the next job finds the worker idle. Two warm-up jobs (the
worker's pool process imports torch on its first job) are not counted.

- embedded: SQLite database + kombu's SQLAlchemy transport on SQLite, in a temporary folder;
- deployed: a private PostgreSQL database (dropped afterwards) + a private `redis-server` on a free port.

Goals: p95 < 1 s embedded, < 150 ms deployed. Where the time goes, per job, from the job row's timestamps
(every process runs on this machine, so the database's clock and this script's are the same clock):

    create    POST sent → job row committed (HTTP, validation, INSERT)
    queue     row committed → `started_at`: the API publishes the task, the broker delivers it, the
              worker hands it to its pool process, which takes the lease (`enqueued_at` cannot split
              this: a worker that is quicker than the API's record of the publish leaves it empty)
    to event  `started_at` → first `progress` event read here (the worker writes progress at step 0, the
              API's poller reads it — woken by a notification, or at its next tick — and streams it)
    answered  POST sent → its answer read here (create + publish; for reference, it overlaps the others)

In the deployed mode the script also listens to the store's change notifications itself, which splits
`to event` by the moments the worker's writes were committed:

    lease     `started_at` → the lease's notification (the commit of the lease)
    progress  → the step-0 progress's notification (the worker's first write after the lease)
    wake-up   → the event read here (the API's listener wakes its poller, which reads and streams)

Machine load from other processes shows in the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from httpx_sse import connect_sse
from psycopg import sql
from service_harness import (
    ADMIN_DSN,
    ROOT,
    free_port,
    private_postgres,
    private_redis,
    start_process,
    stop_process,
)

from core.db.migrate import upgrade_database
from core.store import Store
from core.store.notifications import JOB_EVENTS_CHANNEL, libpq_url

TINY_SPEC: dict[str, Any] = {
    "architecture": {"kind": "mlp", "hidden": [16], "activation": "sigmoid"},
    "batch_norm": True,
    "learning_rate": 0.1,
    "dropout": 0.0,
    "name": "latency-probe",
    "batch_size": 32,
    "steps": 20,
    "eval_every": 10,
    "device": "cpu",
}
WARM_UP_JOBS = 2
GOALS_MS = {"embedded": 1000.0, "deployed": 150.0}
READY_TIMEOUT_SECONDS = 90.0
PHASES = ("create", "queue", "to event", "lease", "progress", "wake-up", "total", "answered")


@dataclass(frozen=True)
class Timing:
    """One job's phases in milliseconds (see the module's docstring); None where not measured."""

    create: float
    queue: float
    to_event: float
    total: float
    answered: float
    lease: float | None = None
    progress: float | None = None
    wake_up: float | None = None

    def phase(self, name: str) -> float | None:
        value: float | None = getattr(self, name.replace(" ", "_").replace("-", "_"))
        return value


class NotificationClock:
    """When each job's change notifications reach a listening connection of this script's own."""

    def __init__(self, database_url: str) -> None:
        self._connection = psycopg.connect(libpq_url(database_url), autocommit=True)
        self._connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(JOB_EVENTS_CHANNEL)))
        self._arrivals: dict[str, list[float]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stopping.is_set():
            for notification in self._connection.notifies(timeout=0.2):
                arrived = time.time()
                with self._lock:
                    self._arrivals.setdefault(notification.payload, []).append(arrived)

    def arrivals(self, job_id: str) -> list[float]:
        with self._lock:
            return list(self._arrivals.get(job_id, []))

    def close(self) -> None:
        self._stopping.set()
        self._thread.join()
        self._connection.close()


class Service:
    """The API and one worker as child processes on the given database and broker, with their logs."""

    def __init__(self, database_url: str, broker_url: str, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {
            **os.environ,
            "DATABASE_URL": database_url,
            "BROKER_URL": broker_url,
            "BNLAB_API_KEYS": "",
            "BNLAB_READ_ONLY_API_KEYS": "",
            "PYTHONPATH": str(ROOT),
        }
        self.worker_log = log_dir / "worker.log"
        self.api_log = log_dir / "api.log"
        self.processes = [
            start_process(
                [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1",
                 "--port", str(self.port), "--log-level", "warning"],
                environment, self.api_log,
            ),
            start_process(
                [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "--pool=prefork",
                 "--concurrency=1", "-Q", "default,cpu", "--loglevel=INFO",
                 "-n", f"bnlab-bench-{uuid.uuid4().hex[:8]}@%h"],
                environment, self.worker_log,
            ),
        ]  # fmt: skip

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while True:
            api_up = False
            with contextlib.suppress(httpx.TransportError):
                api_up = httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
            if api_up and " ready." in self.worker_log.read_text(errors="replace"):
                return
            exited = [process.args for process in self.processes if process.poll() is not None]
            if exited or time.monotonic() > deadline:
                raise RuntimeError(f"the service did not start ({exited}); logs in {self.api_log.parent}")
            time.sleep(0.2)

    def stop(self) -> None:
        for process in self.processes:
            stop_process(process)


def time_one_job(client: httpx.Client, store: Store, clock: NotificationClock | None) -> Timing:
    """Submit one tiny job, time its first progress event, and read its stream to the end."""
    sent_at = time.time()
    response = client.post("/v1/jobs", json=TINY_SPEC)
    answered_at = time.time()
    response.raise_for_status()
    job_id = response.json()["id"]
    first_progress_at: float | None = None
    with connect_sse(client, "GET", f"/v1/jobs/{job_id}/events") as source:
        for message in source.iter_sse():
            if message.event == "progress" and first_progress_at is None:
                first_progress_at = time.time()
    job = store.get_job(job_id)
    if job is None or job.started_at is None or first_progress_at is None or job.status != "succeeded":
        raise RuntimeError(f"job {job_id} ended without progress or success: {job}")
    created, started = job.created_at.timestamp(), job.started_at.timestamp()
    timing = Timing(
        create=1000 * (created - sent_at),
        queue=1000 * (started - created),
        to_event=1000 * (first_progress_at - started),
        total=1000 * (first_progress_at - sent_at),
        answered=1000 * (answered_at - sent_at),
    )
    if clock is None:
        return timing
    leased, progressed = clock.arrivals(job_id)[:2]
    return dataclasses.replace(
        timing,
        lease=1000 * (leased - started),
        progress=1000 * (progressed - leased),
        wake_up=1000 * (first_progress_at - progressed),
    )


def measure(database_url: str, broker_url: str, jobs: int, log_dir: Path) -> list[Timing]:
    upgrade_database(database_url)
    service = Service(database_url, broker_url, log_dir)
    store = Store(database_url)
    clock = NotificationClock(database_url) if store.is_postgres else None
    try:
        service.wait_until_ready()
        with httpx.Client(base_url=service.url, timeout=httpx.Timeout(10, read=60)) as client:
            for _ in range(WARM_UP_JOBS):
                time_one_job(client, store, clock)
            return [time_one_job(client, store, clock) for _ in range(jobs)]
    finally:
        if clock is not None:
            clock.close()
        store.dispose()
        service.stop()


def run_mode(mode: str, jobs: int, admin_dsn: str) -> list[Timing]:
    with tempfile.TemporaryDirectory(prefix=f"bnlab-bench-{mode}-") as scratch:
        folder = Path(scratch)
        if mode == "embedded":
            return measure(
                f"sqlite:///{folder / 'bnlab.db'}", f"sqla+sqlite:///{folder / 'broker.db'}", jobs, folder
            )
        with private_postgres(admin_dsn, "events") as database_url, private_redis(folder) as broker_url:
            return measure(database_url, broker_url, jobs, folder)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


def report(mode: str, timings: list[Timing]) -> None:
    goal = GOALS_MS[mode]
    totals = [timing.total for timing in timings]
    verdict = "met" if percentile(totals, 0.95) < goal else "MISSED"
    print(
        f"\n{mode}: submit → first progress event, {len(timings)} jobs (goal p95 < {goal:.0f} ms: {verdict})"
    )
    print(f"  {'phase':<9} {'p50':>8} {'p95':>8} {'max':>8}")
    for name in PHASES:
        values = [value for timing in timings if (value := timing.phase(name)) is not None]
        if values:
            print(
                f"  {name:<9} {statistics.median(values):6.1f}ms {percentile(values, 0.95):6.1f}ms "
                f"{max(values):6.1f}ms"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=50, help="timed jobs per mode")
    parser.add_argument("--mode", choices=["embedded", "deployed", "both"], default="both")
    parser.add_argument("--admin-dsn", default=ADMIN_DSN)
    arguments = parser.parse_args()
    if arguments.mode != "embedded" and shutil.which("redis-server") is None:
        parser.error("the deployed mode needs redis-server on the PATH")
    modes = ["embedded", "deployed"] if arguments.mode == "both" else [arguments.mode]
    for mode in modes:
        print(f"{mode}: starting the API and a worker, timing {arguments.jobs} jobs…", flush=True)
        report(mode, run_mode(mode, arguments.jobs, arguments.admin_dsn))


if __name__ == "__main__":
    main()
