"""The one-command embedded mode, run as a user runs it: `python -m api.embedded` in an empty folder.

A tiny job trains to success; Ctrl-C (SIGINT) stops the API and the worker within seconds even while a
long job runs; at the next start the finished job and its metrics are still there and the interrupted job
is taken up again by the republisher. Requests leave no line in the log unless asked for, and a port already
taken is one line of error. The worker consumes the gpu queue when it believes it has CUDA (set by
BNLAB_WORKER_DEVICE_KIND, as a GPU machine's probe would find it), the cpu queue otherwise.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import TINY_SPEC

REPOSITORY = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 60.0
STOP_LIMIT_SECONDS = 8.0  # "within a few seconds": 5 s of grace at most, plus interpreter exit
LONG_SPEC: dict[str, Any] = {**TINY_SPEC, "name": "long", "steps": 100_000, "eval_every": 1000,
                             "telemetry_every": 0, "checkpoint_every": 200}  # fmt: skip
# Liveness at test speed (DESIGN: heartbeat 0.5 s, lease 3 s, sweep 1 s).
FAST_LIVENESS = {"BNLAB_HEARTBEAT_SECONDS": "0.5", "BNLAB_LEASE_SECONDS": "3", "BNLAB_REPUBLISH_SECONDS": "1"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Running:
    launcher: subprocess.Popen[bytes]
    url: str
    child_pids: list[int]
    log: Path


def embedded_environment() -> dict[str, str]:
    """This environment without bnlab's settings (the embedded defaults apply), at test liveness."""
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("BNLAB_") and "_URL" not in key
    }
    return {**environment, "PYTHONPATH": str(REPOSITORY), **FAST_LIVENESS}


def start_embedded(folder: Path, run: int, *options: str, **settings: str) -> Running:
    port = free_port()
    environment = {**embedded_environment(), **settings}
    log = folder / f"embedded-{run}.log"
    with log.open("wb") as output:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "api.embedded", "--port", str(port), *options],
            cwd=folder,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline and launcher.poll() is None:
        text = log.read_text(errors="replace")
        if "bnlab is running at" in text:
            pids = re.search(r"started the API \(pid (\d+)\) and a worker \(pid (\d+)\)", text)
            assert pids is not None, text
            return Running(launcher, f"http://127.0.0.1:{port}", [int(pid) for pid in pids.groups()], log)
        time.sleep(0.2)
    launcher.kill()
    pytest.fail(f"the embedded service did not start:\n{log.read_text(errors='replace')[-3000:]}")


def interrupt(running: Running) -> float:
    """Ctrl-C the launcher; returns how long it took to exit."""
    started = time.monotonic()
    running.launcher.send_signal(signal.SIGINT)
    running.launcher.wait(timeout=30)
    return time.monotonic() - started


def process_group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(client: httpx.Client, job_id: str, condition: Any, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if condition(job) or time.monotonic() > deadline:
            return job
        time.sleep(0.25)


def check_worker_device(client: httpx.Client, running: Running, device_kind: str, queues: str) -> None:
    """The worker says it consumes `queues`, registers with them and `device_kind`, and a CUDA job shows
    whether any live worker consumes the gpu queue (the job is cancelled again)."""
    assert f"consuming {queues}" in running.log.read_text()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not (workers := client.get("/v1/workers").json()["items"]):
        assert time.monotonic() < deadline, running.log.read_text()[-3000:]
        time.sleep(0.25)
    [worker] = workers
    assert (worker["queues"], worker["device"]["kind"]) == (sorted(queues.split(",")), device_kind)
    cuda_job = client.post("/v1/jobs", json={**TINY_SPEC, "device": "cuda"}).json()
    client.post(f"/v1/jobs/{cuda_job['id']}/cancel")  # a worker that only believes in CUDA would fail it
    if device_kind == "cuda":
        assert cuda_job["waiting_for"] is None
    else:
        assert "no live worker consumes the gpu queue" in cuda_job["waiting_for"]


def assert_quiet(log: str) -> None:
    """No access-log line, no Celery banner, no root warning: only what bnlab itself says."""
    assert "GET /v1/jobs" not in log
    assert "[tasks]" not in log and "[queues]" not in log  # Celery's banner
    assert "superuser privileges" not in log  # Celery's warning when run as root (containers, CI)
    assert "bnlab is running at" in log


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    for pid_line in re.findall(r"\(pid (\d+)\)", "".join(p.read_text() for p in tmp_path.glob("*.log"))):
        if process_group_alive(int(pid_line)):  # a failed test must not leave servers behind
            os.killpg(int(pid_line), signal.SIGKILL)


@pytest.mark.timeout(240)
def test_embedded_mode_trains_stops_on_ctrl_c_and_keeps_everything_across_a_restart(folder: Path) -> None:
    # Each start costs a worker and its pool process with torch loaded: this one also stands for the
    # default (CPU) worker's queues and for a log without requests in it.
    first = start_embedded(folder, run=1)
    assert (folder / "var" / "bnlab.db").is_file()
    with httpx.Client(base_url=first.url, timeout=10) as client:
        check_worker_device(client, first, "cpu", "default,cpu")
        tiny = client.post("/v1/jobs", json=TINY_SPEC).json()
        finished = wait_for(
            client, tiny["id"], lambda job: job["status"] != "queued" and job["finished_at"], 90
        )
        assert finished["status"] == "succeeded", finished
        metrics_before = client.get(f"/v1/jobs/{tiny['id']}/metrics").json()
        assert metrics_before["series"]["val_accuracy"]["steps"][-1] == TINY_SPEC["steps"]
        assert client.get(f"/v1/jobs/{tiny['id']}/telemetry").json()["layers"]

        long = client.post("/v1/jobs", json=LONG_SPEC).json()
        running = wait_for(client, long["id"], lambda job: (job["progress"] or {}).get("step", 0) > 400, 60)
        assert running["status"] == "running", running

    stop_seconds = interrupt(first)
    assert first.launcher.returncode == 0, first.log.read_text()[-3000:]
    assert_quiet(first.log.read_text(errors="replace"))
    assert stop_seconds < STOP_LIMIT_SECONDS, f"Ctrl-C took {stop_seconds:.1f} s"
    assert not any(process_group_alive(pid) for pid in first.child_pids)

    second = start_embedded(folder, run=2)
    with httpx.Client(base_url=second.url, timeout=10) as client:
        assert client.get(f"/v1/jobs/{tiny['id']}").json() == finished
        assert client.get(f"/v1/jobs/{tiny['id']}/metrics").json() == metrics_before
        # The interrupted job's lease goes stale; the republisher publishes it again, the worker takes over.
        resumed = wait_for(client, long["id"], lambda job: job["attempts"] >= 2, 60)
        assert resumed["attempts"] == 2 and resumed["status"] == "running", resumed
        assert client.post(f"/v1/jobs/{long['id']}/cancel").status_code == 202
        cancelled = wait_for(client, long["id"], lambda job: job["status"] == "cancelled", 30)
        assert cancelled["status"] == "cancelled"
    assert interrupt(second) < STOP_LIMIT_SECONDS
    assert not any(process_group_alive(pid) for pid in second.child_pids)


def test_a_port_already_taken_is_one_line_and_a_failing_exit_status(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        finished = subprocess.run(
            [sys.executable, "-m", "api.embedded", "--port", str(port)],
            cwd=tmp_path,
            env=embedded_environment(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert finished.returncode == 1
    assert finished.stdout == ""
    assert finished.stderr.splitlines() == [
        f"error: port {port} on 127.0.0.1 is already in use (is bnlab already running?); "
        f"choose another: make run PORT={port + 1}"
    ]
    assert not (tmp_path / "var").exists()  # it said so before creating or migrating anything


@pytest.mark.timeout(180)
def test_a_worker_that_believes_it_has_cuda_consumes_the_gpu_queue_and_asked_for_requests_are_logged(
    folder: Path,
) -> None:
    # The CPU worker's queues, and a log without requests when the access log is not asked for: see the
    # first test. Each start costs a worker with torch loaded, so this one start checks both the CUDA
    # worker's queues and the access log that --access-log asks for.
    running = start_embedded(folder, 1, "--access-log", BNLAB_WORKER_DEVICE_KIND="cuda")
    try:
        with httpx.Client(base_url=running.url, timeout=10) as client:
            check_worker_device(client, running, "cuda", "default,gpu")
            for _ in range(5):
                assert client.get("/v1/jobs").status_code == 200
    finally:
        stop_seconds = interrupt(running)
    assert stop_seconds < STOP_LIMIT_SECONDS
    assert running.log.read_text(errors="replace").count('"GET /v1/jobs HTTP/1.1" 200') == 5
