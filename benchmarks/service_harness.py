"""What the benchmarks that drive a real bnlab service share: `python -m api.embedded` started in a
directory of its own and warmed up, the private PostgreSQL database and `redis-server` that put a service
in the deployed mode, and starting and stopping the processes of one (the API, workers) with their logs.
Not run on its own: the scripts beside it import it, which is why every benchmark runs as a script,
`python benchmarks/<name>.py`, never as `python -m benchmarks.<name>`.

The embedded service runs this checkout's code (PYTHONPATH is set to it) on one torch thread, with API keys
off whatever the calling shell holds; `start_process` takes the environment its caller gives.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import redis
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT_SECONDS = 120.0
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
# Tiny and quick, trained once before any timing: the worker's pool process imports torch on its first job.
WARM_UP_SPEC = {
    "architecture": {"kind": "mlp", "hidden": [16], "activation": "sigmoid"},
    "batch_norm": True,
    "learning_rate": 0.1,
    "dropout": 0.0,
    "steps": 20,
    "eval_every": 10,
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_process(command: list[str], environment: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`command` run from the checkout's root with its output in `log`, in a process group of its own:
    `stop_process` then stops its children too (a prefork worker's pool)."""
    with log.open("wb") as output:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=dict(environment),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group of a `start_process` child; SIGKILL if it has not exited 10 s later."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def embedded_service(directory: Path, environment: Mapping[str, str] | None = None) -> Iterator[httpx.Client]:
    """`python -m api.embedded` with its state (and `service.log`) in `directory`, on SQLite unless
    `environment` names a DATABASE_URL and BROKER_URL; a client of its API once its worker has trained the
    warm-up job."""
    port = free_port()
    child_environment = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "BNLAB_TORCH_THREADS": "1",
        "BNLAB_API_KEYS": "",
        "BNLAB_READ_ONLY_API_KEYS": "",
        **(environment or {}),
    }
    with (directory / "service.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "api.embedded", "--port", str(port)],
            cwd=directory,
            env=child_environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60.0) as client:
            wait_for_warm_worker(client, process)
            yield client
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def wait_for_warm_worker(client: httpx.Client, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    job_id = None
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if job_id is None:
                job_id = client.post("/v1/jobs", json=WARM_UP_SPEC).raise_for_status().json()["id"]
            elif client.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded":
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("the embedded service did not train its warm-up job")


@contextmanager
def private_redis(directory: Path) -> Iterator[str]:
    """A `redis-server` of its own on a free port, without persistence; its URL while it runs."""
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(10)


@contextmanager
def private_postgres(admin_dsn: str, label: str) -> Iterator[str]:
    """A fresh database `bnlab_bench_<label>_…` on the server of `admin_dsn`, dropped afterwards (`WITH
    (FORCE)`: a service that did not close its pool cannot block the drop); its URL."""
    database = f"bnlab_bench_{label}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    try:
        yield admin_dsn.rsplit("/", 1)[0] + f"/{database}"
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
