"""The service sweep benchmark end to end, on a tiny budget: it starts the real service in each mode, runs
the 16-job sweep fused and separate through the API, and reports times only once both modes agree.

Each service start costs a worker with torch loaded (and, embedded, a cold stop of seconds): the deployed
run starts a fresh service for each sweep, as the benchmark does by default; the embedded one runs both
sweeps on one service (`--one-service`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.databases import PG_ADMIN_DSN, postgres_available
from tests.fixtures.requirements import require

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "service_sweep.py"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.mark.parametrize("mode", ["embedded", "deployed"])
def test_a_tiny_sweep_runs_fused_and_separate_with_the_same_results(mode: str) -> None:
    arguments = [sys.executable, str(SCRIPT), "--steps", "20", "--rounds", "1"]
    if mode == "embedded":
        arguments.append("--one-service")
    if mode == "deployed":
        require(postgres_available(), "PostgreSQL at 127.0.0.1:5432")
        require(shutil.which("redis-server") is not None, "redis-server")
        arguments += ["--deployed", "--admin-dsn", PG_ADMIN_DSN]
    finished = subprocess.run(arguments, cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    lines = finished.stdout.splitlines()
    assert lines[0].startswith("16 jobs x 20 steps through the service")
    services = "one service for every run" if mode == "embedded" else "a fresh service each run"
    assert services in lines[0]
    assert any(line.startswith("round 1: fused    (fused groups of 16)") for line in lines)
    assert any(line.startswith("round 1: separate (one task a job)") for line in lines)
    for execution in ("fused   ", "separate"):
        assert any(line.startswith(f"{execution} POST to last job's end: best") for line in lines)
    assert "every run: 16 succeeded, 0 diverged, the same jobs alike" in finished.stdout
