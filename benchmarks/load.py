"""Load: 1,000 `POST /v1/jobs` of tiny jobs from several client processes on loopback against the deployed
mode, then a check that every accepted job was stored and trained exactly once.

    python benchmarks/load.py [--jobs 1000] [--clients 8] [--workers 2] [--api-processes 1]
                              [--training-steps 0] [--access-log]
                              [--url postgresql://postgres@127.0.0.1:5432/postgres] [--py-spy FILE]

Everything runs on private state, started and stopped by the script: a scratch PostgreSQL database next to
the one in --url (migrated, dropped at the end), a redis-server of its own on a free port, the API under
uvicorn, and --workers Celery workers (prefork, one process each, like the deployed ones). The clients
start together and each posts its share of the jobs one after another on a keep-alive connection.

Prints the request rate and the p50/p99/max latency of the submissions and the CPU time each accepted
request cost the API's processes, the database's server processes and Redis (read from /proc: a figure that
other work on the machine disturbs far less than the rate), then waits for the workers to
finish every job and checks: every 201 names a stored job, no job is missing or extra, every job
succeeded with attempts == 1 (none ran twice) and stored its last evaluation. Exits 1 if a check fails.
With --workers 0 nothing trains: the check is that every accepted job is stored, queued and published.
With --training-steps N each worker first takes a job of a wider net training N steps, and the burst starts
once they all train: the submissions then compete with training for the whole burst, not only with the tiny
jobs' bookkeeping. The script says whether those jobs still trained when the burst ended, then cancels them
(they must end cancelled or succeeded, each trained once).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
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
from core.store import JobView, Store

READY_TIMEOUT_SECONDS = 90.0
FINISH_TIMEOUT_SECONDS = 1800.0
TINY_SPEC: dict[str, Any] = {
    "architecture": {"kind": "mlp", "hidden": [8], "activation": "sigmoid"},
    "batch_norm": True,
    "learning_rate": 0.1,
    "dropout": 0.0,
    "batch_size": 16,
    "steps": 10,
    "eval_every": 10,
    "device": "cpu",
}

BACKGROUND_SPEC: dict[str, Any] = {
    "architecture": {"kind": "mlp", "hidden": [256, 256, 256], "activation": "relu"},
    "batch_norm": True,
    "learning_rate": 0.05,
    "dropout": 0.0,
    "batch_size": 256,
    "device": "cpu",
}

Submission = tuple[str | None, int, float]  # (job id, HTTP status, seconds)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process `pid` so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime and stime, fields 14 and 15


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (uvicorn's worker processes)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        pending.extend(children.get(current, []))
    return tree


def database_backends(database_url: str) -> list[int]:
    """The PostgreSQL server processes serving the database of `database_url` (this machine's server)."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [pid for (pid,) in rows]


class CpuMeter:
    """CPU seconds spent by groups of processes between `start` and `stop`; a process that appears in
    between counts from its start."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups
        self.before: dict[str, dict[int, float]] = {}
        self.spent: dict[str, float] = {}
        self.started = self.seconds = 0.0

    def start(self) -> None:
        self.before = {name: {pid: cpu_seconds(pid) for pid in pids()} for name, pids in self.groups.items()}
        self.started = time.perf_counter()

    def stop(self) -> None:
        self.seconds = time.perf_counter() - self.started
        for name, pids in self.groups.items():
            before = self.before[name]
            self.spent[name] = sum(cpu_seconds(pid) - before.get(pid, 0.0) for pid in pids())


def wait_for(ready: Any, what: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start; see {log}")
        time.sleep(0.1)


def submit_share(url: str, first: int, count: int, barrier: Any) -> list[Submission]:
    """One client process: connect, wait for the others, then post `count` jobs one after another."""
    submissions: list[Submission] = []
    with httpx.Client(base_url=url, timeout=60) as client:
        client.get("/healthz").raise_for_status()
        barrier.wait()  # connected
        barrier.wait()  # the CPU meter has started: go
        for index in range(first, first + count):
            spec = {**TINY_SPEC, "name": f"load-{index}", "seed": index}
            started = time.perf_counter()
            response = client.post("/v1/jobs", json=spec)
            seconds = time.perf_counter() - started
            job_id = response.json().get("id") if response.status_code == 201 else None
            submissions.append((job_id, response.status_code, seconds))
    return submissions


def percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))]


def all_jobs(store: Store, status: str | None = None) -> list[JobView]:
    jobs: list[JobView] = []
    cursor: str | None = None
    while True:
        page, cursor = store.list_jobs(status=status, limit=200, cursor=cursor)
        jobs.extend(page)
        if cursor is None:
            return jobs


def unfinished(store: Store) -> int:
    return sum(len(all_jobs(store, status)) for status in ("queued", "running"))


def start_background_training(url: str, workers: int, steps: int) -> list[str]:
    """One job of `steps` steps of a wider net per worker; returns their ids once all of them train."""
    with httpx.Client(base_url=url, timeout=60) as client:
        job_ids = []
        for index in range(workers):
            spec = {**BACKGROUND_SPEC, "steps": steps, "eval_every": steps, "name": f"background-{index}"}
            response = client.post("/v1/jobs", json=spec)
            response.raise_for_status()
            job_ids.append(response.json()["id"])
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not all(client.get(f"/v1/jobs/{job_id}").json()["status"] == "running" for job_id in job_ids):
            if time.monotonic() > deadline:
                raise RuntimeError("the background jobs did not all start training")
            time.sleep(0.1)
    return job_ids


def stop_background_training(url: str, job_ids: list[str]) -> int:
    """Cancels the background jobs; returns how many of them were still training."""
    with httpx.Client(base_url=url, timeout=60) as client:
        training = sum(client.get(f"/v1/jobs/{job_id}").json()["status"] == "running" for job_id in job_ids)
        for job_id in job_ids:
            client.post(f"/v1/jobs/{job_id}/cancel")
    return training


def check(
    store: Store, submissions: list[Submission], trained: bool, background: list[str] | None = None
) -> list[str]:
    """What went wrong, if anything: lost, extra, failed or repeated jobs, or missing results; untrained
    (no workers), jobs still queued that were never published. The `background` jobs count as accepted."""
    problems: list[str] = []
    statuses = Counter(status for _, status, _ in submissions)
    if set(statuses) != {201}:
        problems.append(f"answers other than 201: {dict(statuses)}")
    tiny = {job_id for job_id, _, _ in submissions if job_id is not None}
    accepted = tiny | set(background or [])
    stored = {job.id: job for job in all_jobs(store)}
    if missing := accepted - stored.keys():
        problems.append(f"{len(missing)} accepted jobs are not stored (lost)")
    if extra := stored.keys() - accepted:
        problems.append(f"{len(extra)} stored jobs were never accepted")
    outcomes = Counter(job.status for job_id, job in stored.items() if job_id in tiny)
    if not trained:
        if set(outcomes) != {"queued"}:
            problems.append(f"statuses: {dict(outcomes)}")
        if unpublished := [job.id for job in stored.values() if job.enqueued_at is None]:
            problems.append(f"{len(unpublished)} jobs were never published")
        return problems
    if set(outcomes) != {"succeeded"}:
        problems.append(f"final statuses: {dict(outcomes)}")
    background_outcomes = Counter(stored[job_id].status for job_id in background or [] if job_id in stored)
    if set(background_outcomes) - {"cancelled", "succeeded"}:
        problems.append(f"background jobs' final statuses: {dict(background_outcomes)}")
    if repeated := [job.id for job in stored.values() if job.attempts != 1 or job.lease_losses != 0]:
        problems.append(f"{len(repeated)} jobs ran more than once (attempts != 1)")
    last_step = TINY_SPEC["steps"]
    without_results = [
        job_id
        for job_id in tiny & stored.keys()
        if store.read_metrics(job_id, ["val_accuracy"], 10)["val_accuracy"][0][-1:] != [last_step]
    ]
    if without_results:
        problems.append(f"{len(without_results)} jobs have no evaluation at step {last_step}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8, help="client processes posting at once")
    parser.add_argument(
        "--workers", type=int, default=2, help="Celery worker processes (0: time the submissions alone)"
    )
    parser.add_argument("--api-processes", type=int, default=1, help="uvicorn worker processes (--workers)")
    parser.add_argument(
        "--training-steps", type=int, default=0, help="first give each worker a job of this many steps"
    )
    parser.add_argument(
        "--access-log", action="store_true", help="the API logs each request, as compose's API does"
    )
    parser.add_argument("--py-spy", metavar="FILE", help="profile the API with py-spy into FILE (speedscope)")
    parser.add_argument("--url", default=ADMIN_DSN)
    arguments = parser.parse_args()
    if shutil.which("redis-server") is None:
        print("redis-server is not installed", file=sys.stderr)
        return 2

    folder = Path(tempfile.mkdtemp(prefix="bnlab-load-"))
    with ExitStack() as cleanup:
        database_url = cleanup.enter_context(private_postgres(arguments.url, "load"))
        upgrade_database(database_url)
        broker_url = cleanup.enter_context(private_redis(folder))

        environment = {
            **os.environ,
            "DATABASE_URL": database_url,
            "BROKER_URL": broker_url,
            "BNLAB_TORCH_THREADS": "1",
            "PYTHONPATH": str(ROOT),
        }
        workers = []
        for index in range(arguments.workers):
            log = folder / f"worker-{index}.log"
            worker = start_process(
                [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "--pool=prefork",
                 "--concurrency=1", "-Q", "default,cpu", "-n", f"load-{index}@%h", "--without-mingle",
                 "--without-gossip", "--without-heartbeat", "--loglevel=INFO"],
                environment,
                log,
            )  # fmt: skip
            cleanup.callback(stop_process, worker)
            workers.append((worker, log))

        api_port = free_port()
        api_log = folder / "api.log"
        access_log = [] if arguments.access_log else ["--no-access-log"]
        api = start_process(
            [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(api_port),
             *access_log, "--workers", str(arguments.api_processes)],
            environment,
            api_log,
        )  # fmt: skip
        cleanup.callback(stop_process, api)
        url = f"http://127.0.0.1:{api_port}"
        wait_for(lambda: answers_health(url), "the API", api, api_log)
        for worker, log in workers:
            wait_for(lambda log=log: " ready." in log.read_text(errors="replace"), "a worker", worker, log)
        print(
            f"deployed mode up: PostgreSQL {database_url}, redis {broker_url}, API {url}, "
            f"{arguments.workers} workers (logs in {folder})"
        )

        background: list[str] = []
        if arguments.training_steps and arguments.workers:
            background = start_background_training(url, arguments.workers, arguments.training_steps)
            print(f"{len(background)} background jobs of {arguments.training_steps} steps are training")

        shares = [
            arguments.jobs // arguments.clients + (index < arguments.jobs % arguments.clients)
            for index in range(arguments.clients)
        ]
        firsts = [sum(shares[:index]) for index in range(arguments.clients)]
        redis_pid = int(redis.Redis.from_url(broker_url).info("server")["process_id"])
        meter = CpuMeter(
            {
                "the API": lambda: process_tree(api.pid),
                "PostgreSQL": lambda: database_backends(database_url),
                "Redis": lambda: [redis_pid],
                "the workers": lambda: [pid for worker, _ in workers for pid in process_tree(worker.pid)],
            }
        )
        profiler = start_py_spy(arguments.py_spy, api.pid, folder) if arguments.py_spy else None
        context = multiprocessing.get_context("spawn")
        with context.Manager() as manager, context.Pool(arguments.clients) as pool:
            barrier = manager.Barrier(arguments.clients + 1)
            pending = pool.starmap_async(
                submit_share,
                [(url, first, share, barrier) for first, share in zip(firsts, shares, strict=True)],
            )
            barrier.wait()  # every client is connected
            meter.start()
            barrier.wait()  # go (a Barrier serves again once all have passed)
            started = time.perf_counter()
            submissions = [submission for share in pending.get() for submission in share]
            submit_seconds = time.perf_counter() - started
            meter.stop()
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)  # py-spy writes its file when interrupted
            profiler.wait(timeout=60)

        if background:
            training = stop_background_training(url, background)
            print(f"when the burst ended, {training} of the {len(background)} background jobs still trained")
        latencies = sorted(seconds * 1000 for _, _, seconds in submissions)
        rate = len(submissions) / submit_seconds
        print(
            f"{len(submissions)} POST /v1/jobs from {arguments.clients} client processes in "
            f"{submit_seconds:.2f} s: {rate:.0f} requests/s"
        )
        print(
            f"latency p50 {percentile(latencies, 0.50):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms, "
            f"max {latencies[-1]:.1f} ms, mean {statistics.fmean(latencies):.1f} ms"
        )
        accepted = sum(status == 201 for _, status, _ in submissions) or 1
        workers_seconds = meter.spent.pop("the workers")
        print(
            "CPU per accepted request: "
            + ", ".join(f"{name} {seconds * 1000 / accepted:.2f} ms" for name, seconds in meter.spent.items())
            + f"; load average {' '.join(f'{value:.2f}' for value in os.getloadavg())}"
        )
        print(f"the workers used {workers_seconds / meter.seconds:.2f} cores while the clients posted")

        store = Store(database_url)
        cleanup.callback(store.dispose)
        trained = arguments.workers > 0
        remaining = 0
        if trained:
            deadline = time.monotonic() + FINISH_TIMEOUT_SECONDS
            while (remaining := unfinished(store)) and time.monotonic() < deadline:
                if any(worker.poll() is not None for worker, _ in workers):
                    print(f"a worker exited; see {folder}", file=sys.stderr)
                    break
                time.sleep(1.0)
            all_done_seconds = time.perf_counter() - started
            throughput = len(submissions) / all_done_seconds
            print(
                f"all jobs finished {all_done_seconds:.1f} s after the first request "
                f"({throughput:.1f} jobs/s through {arguments.workers} workers)"
            )

        problems = check(store, submissions, trained, background)
        if remaining:
            problems.append(f"{remaining} jobs still unfinished")
        for problem in problems:
            print(f"FAILED: {problem}", file=sys.stderr)
        if not problems:
            outcome = (
                "all succeeded with attempts == 1 and their last evaluation stored; none lost, none run twice"
                if trained
                else "all queued and published (--workers 0: nothing trained them)"
            )
            total = len(submissions) + len(background)
            print(f"checked: {total} accepted, {total} stored, {outcome}")
            shutil.rmtree(folder, ignore_errors=True)
        return 1 if problems else 0


def start_py_spy(output: str, pid: int, folder: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling the API's processes (`--subprocesses`) into `output` until interrupted, only while a
    thread holds the GIL (`--gil`): where the Python CPU time goes, without the waits."""
    executable = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return start_process(
        [executable, "record", "--pid", str(pid), "--subprocesses", "--gil", "--format", "speedscope",
         "--rate", "250", "--output", str(Path(output).resolve())],
        os.environ,
        folder / "py-spy.log",
    )  # fmt: skip


def answers_health(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


if __name__ == "__main__":
    sys.exit(main())
