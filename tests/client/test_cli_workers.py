"""`bnlab workers` against the real running service (embedded mode): the worker's table row and JSON; and
`bnlab submit --watch` of a job no live worker can take, which says why before it waits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.client.test_cli_service import bnlab, write_spec
from tests.fixtures.service import NEVER_STARTS_SPEC, RunningService
from tests.fixtures.worker import PROJECT_ROOT

APPEAR_TIMEOUT_SECONDS = 60.0  # the worker probes its device (a torch import) before it registers


def test_workers_lists_the_live_worker_with_its_queues_and_device(sqlite_service: RunningService) -> None:
    deadline = time.monotonic() + APPEAR_TIMEOUT_SECONDS
    while not (listed := json.loads(bnlab(sqlite_service, "workers", "--json").stdout)["items"]):
        assert time.monotonic() < deadline, "no worker registered itself"
        time.sleep(0.5)
    [worker] = [worker for worker in listed if worker["queues"] == ["cpu", "default"]]
    assert worker["alive"] and worker["device"]["kind"] == "cpu"

    table = bnlab(sqlite_service, "workers")
    assert table.exit_code == 0, table.output
    row = next(line for line in table.stdout.splitlines() if str(worker["pid"]) in line)
    for text in ("cpu,default", f"cpu: {worker['device']['name']}", "yes"):
        assert text in row, row
    assert bnlab(sqlite_service, "workers", "--all").exit_code == 0


def test_submit_watch_of_a_job_nobody_can_take_says_why_it_waits(
    sqlite_service: RunningService, tmp_path: Path
) -> None:
    spec_file = write_spec(tmp_path, NEVER_STARTS_SPEC)  # cuda: the embedded CPU worker does not take it
    environment = {
        **os.environ,
        "BNLAB_URL": sqlite_service.url,
        "BNLAB_API_KEY": "",
        "PYTHONUNBUFFERED": "1",
    }
    watcher = subprocess.Popen(
        [sys.executable, "-c", "from client.cli import app; app()", "submit", str(spec_file), "--watch"],
        cwd=PROJECT_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        submitted = watcher.stdout.readline().strip()
        waiting = watcher.stdout.readline().strip()
        watcher.send_signal(signal.SIGINT)
        watcher.communicate(timeout=10)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    job_id = submitted.removeprefix("Submitted job ").split()[0]
    httpx.post(f"{sqlite_service.url}/v1/jobs/{job_id}/cancel").raise_for_status()
    assert waiting.startswith(
        "Waiting: no live worker consumes the gpu queue; start one on a machine with a GPU with "
    )
    assert watcher.returncode == 130  # detached from a job that is still waiting
