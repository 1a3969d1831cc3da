"""What both study scripts (`run_studies.py`, `landscape_study.py`) share about talking to bnlab's API: their
common command-line options, a client with the API key, submitting a sweep, waiting for sweeps with a
progress bar and a printed line whenever one moves on (readable in a log, where the bar is not drawn), and
one line instead of a traceback when the service is not there or answers an error.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

TERMINAL_STATUSES = ("succeeded", "failed", "diverged", "cancelled")
POLL_SECONDS = 2.0
EXIT_SERVICE_ERROR = 1

console = Console(stderr=True, soft_wrap=True)  # a line stays one line in a log


@dataclass(frozen=True)
class Waiting:
    """A sweep to wait for: its id, its size, and what its progress lines start with ("" for nothing)."""

    sweep_id: str
    size: int
    label: str = ""


def add_service_arguments(parser: argparse.ArgumentParser, report: str, waits_for: str) -> None:
    """`--url`, `--api-key`, `--timeout` (seconds to wait for `waits_for`) and `--output-dir` (where `report`
    and figures/ go)."""
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the bnlab API")
    parser.add_argument("--api-key", default=None, help="sent as a bearer token when the API requires one")
    parser.add_argument("--timeout", type=float, default=3600.0, help=f"seconds to wait for {waits_for}")
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help=f"where {report} and figures/ are written (default: a new folder under var/reports/; "
        "`examples` regenerates the tracked report)",
    )


def default_output_dir(prefix: str) -> Path:
    """A new folder per run under var/reports/ (relative to where the script runs)."""
    return Path("var") / "reports" / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"


def with_service(url: str, api_key: str | None, work: Callable[[httpx.Client], None]) -> int:
    """Run `work` with a client of the API; the exit status, 1 with one line where the service is not there
    or answers an error."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=60.0) as client:
            work(client)
    except httpx.TransportError as error:
        console.print(unreachable(url, error), highlight=False)
        return EXIT_SERVICE_ERROR
    except httpx.HTTPStatusError as error:
        console.print(
            f"error: {error.request.method} {error.request.url.path} answered "
            f"{error.response.status_code}: {error.response.text[:200]}",
            highlight=False,
        )
        return EXIT_SERVICE_ERROR
    return 0


def unreachable(url: str, error: httpx.TransportError) -> str:
    reason = " ".join(str(error).split()) or type(error).__name__
    return (
        f"error: cannot reach the bnlab service at {url} ({reason}); start it with `make run`, or pass --url"
    )


def get_json(client: httpx.Client, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    response.raise_for_status()
    return response.json()


def submit_sweep(client: httpx.Client, body: dict[str, Any], who: str = "") -> dict[str, Any]:
    """`POST /v1/sweeps`; the created sweep (id, size, job ids). A refusal ends the script with its reason,
    prefixed by `who` where given."""
    response = client.post("/v1/sweeps", json=body)
    if response.status_code != 201:
        prefix = f"{who}: " if who else ""
        raise SystemExit(f"{prefix}the service refused the sweep ({response.status_code}): {response.text}")
    created: dict[str, Any] = response.json()
    return created


def wait_for(
    client: httpx.Client, sweeps: Sequence[Waiting], timeout_seconds: float
) -> dict[str, dict[str, Any]]:
    """Poll every sweep until all its jobs are finished, one progress bar per sweep; each sweep's last view
    (`GET /v1/sweeps/{id}`) by its id."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[states]}"),
    )
    deadline = time.monotonic() + timeout_seconds
    views: dict[str, dict[str, Any]] = {}
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        bars = {
            sweep.sweep_id: progress.add_task(sweep.label or "training", total=sweep.size, states="")
            for sweep in sweeps
        }
        pending = list(sweeps)
        printed: dict[str, str] = {}
        while pending:
            for sweep in list(pending):
                view = views[sweep.sweep_id] = get_json(client, f"/v1/sweeps/{sweep.sweep_id}")
                counts = view["status_counts"]
                done = sum(counts.get(status, 0) for status in TERMINAL_STATUSES)
                states = " ".join(f"{status} {count}" for status, count in counts.items() if count)
                progress.update(bars[sweep.sweep_id], completed=done, states=states)
                line = progress_line(sweep.label, sweep.size, done, view.get("progress"))
                if line != printed.get(sweep.sweep_id):  # a line when it moves on, readable in a log too
                    progress.console.print(line, highlight=False)
                    printed[sweep.sweep_id] = line
                if done >= sweep.size:
                    pending.remove(sweep)
            if pending and time.monotonic() > deadline:
                still = "; ".join(printed[sweep.sweep_id] for sweep in pending)
                raise SystemExit(f"gave up after {timeout_seconds:.0f} s; still running: {still}")
            if pending:
                time.sleep(POLL_SECONDS)
    return views


def progress_line(label: str, size: int, done: int, progress: dict[str, Any] | None) -> str:
    """`1-bn-vs-no-bn: 2/6 jobs done, 41% of the steps, about 12 s left` (from the sweep's `progress`; no
    `label: ` where the label is empty)."""
    line = f"{label}: " if label else ""
    line += f"{done}/{size} jobs done"
    if progress and progress.get("steps_total"):
        line += f", {100 * progress['steps_done'] // progress['steps_total']}% of the steps"
        if progress.get("eta_seconds") and done < size:
            line += f", about {progress['eta_seconds']:.0f} s left"
    return line
