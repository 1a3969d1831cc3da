"""`worker.priority`: a pool process lowers its CPU priority to the setting, never raises it."""

from __future__ import annotations

import subprocess
import sys

from tests.fixtures.worker import PROJECT_ROOT


def niceness_after(start: int, asked: int) -> int:
    """The nice value of a fresh process started at `start` once it asked for `asked`."""
    code = (
        "import os; from worker.priority import lower_priority; "
        f"os.setpriority(os.PRIO_PROCESS, 0, {start}); lower_priority({asked}); "
        "print(os.getpriority(os.PRIO_PROCESS, 0))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    return int(result.stdout)


def test_a_pool_process_takes_the_niceness_asked_for() -> None:
    assert niceness_after(0, 10) == 10


def test_a_worker_started_under_nice_keeps_its_lower_priority_and_zero_changes_nothing() -> None:
    assert niceness_after(15, 10) == 15
    assert niceness_after(0, 0) == 0
