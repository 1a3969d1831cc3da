"""Run the loss-landscape study (`examples/landscape_study.yaml`) through bnlab's HTTP API and write
`LANDSCAPE_REPORT.md` with its tables and Fig. 4-style figures into `--output-dir` (by default a new folder
under `var/reports/`; `--output-dir examples` regenerates the tracked `examples/LANDSCAPE_REPORT.md`). While
the sweep trains it prints a line whenever it moves on; a service that is not there is one line.

Santurkar et al. (2018) claim that batch normalization makes the loss landscape smoother. The study trains
every setting with and without BN on the same seeds; each BN job is compared with the no-BN job of the same
activation, learning rate and seed through `GET /v1/compare` (its landscape ratios), every job's probes are
read from `GET /v1/jobs/{id}/landscape`, and one figure per setting comes from
`GET /v1/jobs/{id}/plots/landscape`. The jobs and the ratios over seeds are `landscape_measures`, the
report `landscape_report`, the talking to the service `sweep_client` (shared with `run_studies.py`).

    make run                                                           # one terminal: the service
    .venv/bin/python examples/landscape_study.py --url http://127.0.0.1:8000   # another: the study
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

EXAMPLES_DIR = Path(__file__).resolve().parent
if str(EXAMPLES_DIR) not in sys.path:  # the report's modules sit beside the script, however it is loaded
    sys.path.insert(0, str(EXAMPLES_DIR))

from landscape_measures import load_job, pair_up  # noqa: E402
from landscape_report import REPORT, write_report  # noqa: E402
from sweep_client import (  # noqa: E402
    Waiting,
    add_service_arguments,
    console,
    default_output_dir,
    submit_sweep,
    wait_for,
    with_service,
)

STUDY_PATH = EXAMPLES_DIR / "landscape_study.yaml"


def run_sweep(client: httpx.Client, sweep: dict[str, Any], timeout_seconds: float) -> list[str]:
    """Submit the sweep, wait until every job has finished; its job ids."""
    created = submit_sweep(client, sweep)
    console.print(f"submitted sweep {created['id']}: {created['size']} jobs")
    wait_for(client, [Waiting(created["id"], created["size"])], timeout_seconds)
    return list(created["job_ids"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_service_arguments(parser, REPORT, waits_for="the sweep")
    parser.add_argument("--study", type=Path, default=STUDY_PATH, help="the study file")
    arguments = parser.parse_args(argv)

    study = yaml.safe_load(arguments.study.read_text())
    output_dir = arguments.output_dir or default_output_dir("landscape")

    def run(client: httpx.Client) -> None:
        started = time.monotonic()
        job_ids = run_sweep(client, study["sweep"], arguments.timeout)
        seconds = time.monotonic() - started
        jobs = [load_job(client, job_id) for job_id in job_ids]
        output_dir.mkdir(parents=True, exist_ok=True)
        write_report(client, study, pair_up(client, jobs), seconds, output_dir)

    return with_service(arguments.url, arguments.api_key, run)


if __name__ == "__main__":
    sys.exit(main())
