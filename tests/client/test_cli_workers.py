"""`bnlab workers` against the real running service (embedded mode): the worker's table row and JSON."""

from __future__ import annotations

import json
import time

from tests.client.test_cli_service import bnlab
from tests.fixtures.service import RunningService

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
