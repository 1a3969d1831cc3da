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
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

from service_harness import ROOT, embedded_service

RUN_STUDIES = ROOT / "examples" / "run_studies.py"
STUDY_TIMEOUT_SECONDS = 3600.0


def load_run_studies() -> ModuleType:
    """`examples/run_studies.py` as a module (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location("run_studies", RUN_STUDIES)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


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
