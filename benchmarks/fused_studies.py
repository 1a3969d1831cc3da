"""The README's studies as fused sweeps against the same sweeps run one task a job:
`python benchmarks/fused_studies.py [--rounds 2] [--report-dir DIR]`.

Each run starts the real embedded service (`python -m api.embedded`: SQLite, the SQLite broker, one worker
on one torch thread) in a fresh temporary directory, waits until its worker has trained a warm-up job (so
neither mode pays for the worker's start), submits every study of `examples/studies/` with `execution` set
to `fused` or `separate`, and times from the first submission to the last job's end. Runs alternate
(fused, separate, fused, ...) so that drifts in machine load hit both alike; other processes only ever
slow a run down, so on a shared machine the best time of each mode is the steadier figure.

With `--report-dir`, the last fused run's report (`REPORT.md` and its figures, as `examples/run_studies.py`
writes them) is written there before its service stops.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import httpx

ROOT = Path(__file__).resolve().parents[1]
RUN_STUDIES = ROOT / "examples" / "run_studies.py"
READY_TIMEOUT_SECONDS = 120.0
STUDY_TIMEOUT_SECONDS = 3600.0
WARM_UP_SPEC = {
    "architecture": {"kind": "mlp", "hidden": [16], "activation": "sigmoid"},
    "batch_norm": True,
    "learning_rate": 0.1,
    "dropout": 0.0,
    "steps": 20,
    "eval_every": 10,
}


def load_run_studies() -> ModuleType:
    """`examples/run_studies.py` as a module (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location("run_studies", RUN_STUDIES)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def embedded_service(directory: Path) -> Iterator[httpx.Client]:
    """`python -m api.embedded` with its state in `directory`; a client of its API once its worker works."""
    port = free_port()
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "BNLAB_TORCH_THREADS": "1"}
    with (directory / "service.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "api.embedded", "--port", str(port)],
            cwd=directory,
            env=environment,
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


def run_studies(run_studies_module: ModuleType, execution: str, report_dir: Path | None) -> tuple[float, int]:
    """Seconds from the first submission until every job of every study ended, and the number of jobs."""
    studies = run_studies_module.load_studies(run_studies_module.STUDIES_DIR, [])
    for study in studies:
        study.sweep["execution"] = execution
    with (
        tempfile.TemporaryDirectory(prefix=f"bnlab-{execution}-") as directory,
        embedded_service(Path(directory)) as client,
    ):
        started = time.monotonic()
        submitted = [run_studies_module.submit(client, study) for study in studies]
        run_studies_module.wait_for(client, submitted, STUDY_TIMEOUT_SECONDS)
        seconds = time.monotonic() - started
        if report_dir is not None:
            service = run_studies_module.Service(client, report_dir)
            run_studies_module.write_report(service, submitted, str(client.base_url), seconds)
    return seconds, sum(item.size for item in submitted)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2, help="runs of each mode, alternating")
    parser.add_argument(
        "--report-dir", type=Path, default=None, help="write the last fused run's report here"
    )
    arguments = parser.parse_args()
    module = load_run_studies()
    seconds: dict[str, list[float]] = {"fused": [], "separate": []}
    for round_index in range(arguments.rounds):
        for execution in ("fused", "separate"):
            last_fused = execution == "fused" and round_index == arguments.rounds - 1
            elapsed, jobs = run_studies(module, execution, arguments.report_dir if last_fused else None)
            seconds[execution].append(elapsed)
            print(f"round {round_index + 1}: {execution:8s} {jobs} jobs in {elapsed:6.1f} s", flush=True)
    fused, separate = min(seconds["fused"]), min(seconds["separate"])
    for execution, times in seconds.items():
        print(f"{execution:8s} best {min(times):6.1f} s, median {statistics.median(times):6.1f} s")
    print(f"fused is {separate / fused:.1f}x faster (best against best)")


if __name__ == "__main__":
    main()
