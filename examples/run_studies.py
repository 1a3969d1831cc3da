"""Run the paper-claim studies in `examples/studies/` through bnlab's HTTP API and write a Markdown report.

Each study file holds `about` (title, the claim under test, what to show) and `sweep` (the body of
`POST /v1/sweeps`), and where its arms are not one grid's product, `also` (more sweep bodies). The script
submits every study, waits with a progress bar per sweep, then writes `REPORT.md` into `--output-dir` (by
default a new folder under `var/reports/`, so the tracked `examples/REPORT.md` changes only when asked:
`--output-dir examples`) with a section per study (`studies_report`: tables aggregated over seeds, arms
compared with intervals and verdicts, `studies_measures` for the covariate-shift measures) and PNG figures
fetched from the plot endpoints into `figures/` beside it. Sections of studies not run this time stay as
the report in the output folder had them (`--fresh` writes only the studies run now). While it waits it
prints a line whenever a sweep moves on; a service that is not there is one line, not a traceback.

    python examples/run_studies.py --url http://127.0.0.1:8000            # every study
    python examples/run_studies.py --study 1-bn-vs-no-bn --study 3-dropout  # a subset
    python examples/run_studies.py --output-dir examples                  # regenerate examples/REPORT.md
    python examples/run_studies.py --reuse --study 7-noisy-bn             # report on sweeps already run
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

EXAMPLES_DIR = Path(__file__).resolve().parent
if str(EXAMPLES_DIR) not in sys.path:  # the report's modules sit beside the script, however it is loaded
    sys.path.insert(0, str(EXAMPLES_DIR))

from studies_model import Service, Study, Submitted, get_json, load_studies  # noqa: E402
from studies_report import REPORT, write_report  # noqa: E402

STUDIES_DIR = EXAMPLES_DIR / "studies"
TERMINAL_STATUSES = ("succeeded", "failed", "diverged", "cancelled")
POLL_SECONDS = 2.0
EXIT_SERVICE_ERROR = 1
REUSE_PAGE = 100

console = Console(stderr=True, soft_wrap=True)  # a line stays one line in a log


def submit(client: httpx.Client, study: Study) -> list[Submitted]:
    """Every sweep of the study, submitted."""
    submitted = []
    for body in study.sweeps:
        response = client.post("/v1/sweeps", json=body)
        if response.status_code != 201:
            raise SystemExit(
                f"{study.slug}: the service refused the sweep ({response.status_code}): {response.text}"
            )
        created = response.json()
        submitted.append(Submitted(study, created["id"], created["size"], {}, body))
    return submitted


def reuse(client: httpx.Client, study: Study) -> list[Submitted]:
    """The sweeps the service already has for the study: for each body, the newest sweep of its name with
    the same grid and seeds (submitted when there is none)."""
    listed = get_json(client, "/v1/sweeps", limit=REUSE_PAGE)["items"]
    found = []
    for body in study.sweeps:
        match = next(
            (
                sweep
                for sweep in listed
                if sweep["name"] == body.get("name", "")
                and sweep["grid"] == body.get("grid", {})
                and sweep["seeds"] == body.get("seeds", sweep["seeds"])
            ),
            None,
        )
        if match is None:
            [created] = submit(client, Study(study.slug, study.about, [body]))
            found.append(Submitted(study, created.sweep_id, created.size, {}, body))
        else:
            found.append(Submitted(study, match["id"], match["size"], {}, body))
    return found


def label(item: Submitted) -> str:
    """A sweep as the progress lines name it: the study, and the sweep's name where the study has several."""
    if len(item.study.sweeps) == 1:
        return item.study.slug
    return f"{item.study.slug} ({item.body.get('name', item.sweep_id[:8])})"


def wait_for(client: httpx.Client, submitted: list[Submitted], timeout_seconds: float) -> None:
    """Poll every sweep until all its jobs are finished, one progress bar per sweep."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[states]}"),
    )
    deadline = time.monotonic() + timeout_seconds
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        bars = {
            item.sweep_id: progress.add_task(label(item), total=item.size, states="") for item in submitted
        }
        pending = list(submitted)
        printed: dict[str, str] = {}
        while pending:
            for item in list(pending):
                item.view = get_json(client, f"/v1/sweeps/{item.sweep_id}")
                counts = item.view["status_counts"]
                done = sum(counts.get(status, 0) for status in TERMINAL_STATUSES)
                states = " ".join(f"{status} {count}" for status, count in counts.items() if count)
                progress.update(bars[item.sweep_id], completed=done, states=states)
                line = progress_line(label(item), item.size, done, item.view.get("progress"))
                if line != printed.get(item.sweep_id):  # a line when it moves on, readable in a log too
                    progress.console.print(line, highlight=False)
                    printed[item.sweep_id] = line
                if done >= item.size:
                    pending.remove(item)
            if pending and time.monotonic() > deadline:
                raise SystemExit(f"gave up after {timeout_seconds:.0f} s; still running: {_labels(pending)}")
            if pending:
                time.sleep(POLL_SECONDS)


def progress_line(slug: str, size: int, done: int, progress: dict[str, Any] | None) -> str:
    """`1-bn-vs-no-bn: 2/6 jobs done, 41% of the steps, about 12 s left` (the sweep's `progress`)."""
    line = f"{slug}: {done}/{size} jobs done"
    if progress and progress.get("steps_total"):
        line += f", {100 * progress['steps_done'] // progress['steps_total']}% of the steps"
        if progress.get("eta_seconds") and done < size:
            line += f", about {progress['eta_seconds']:.0f} s left"
    return line


def unreachable(url: str, error: httpx.TransportError) -> str:
    reason = " ".join(str(error).split()) or type(error).__name__
    return (
        f"error: cannot reach the bnlab service at {url} ({reason}); start it with `make run`, or pass --url"
    )


def default_output_dir() -> Path:
    """A new folder per run under var/reports/ (relative to where the script runs)."""
    return Path("var") / "reports" / f"studies-{time.strftime('%Y%m%d-%H%M%S')}"


def _labels(items: list[Submitted]) -> str:
    return ", ".join(label(item) for item in items)


def runs_of(submitted: Sequence[Submitted]) -> list[list[Submitted]]:
    """The submitted sweeps grouped by study, in study order."""
    runs: dict[str, list[Submitted]] = {}
    for item in submitted:
        runs.setdefault(item.study.slug, []).append(item)
    return list(runs.values())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the bnlab API")
    parser.add_argument("--study", action="append", default=[], help="a study file's name (repeatable)")
    parser.add_argument("--api-key", default=None, help="sent as a bearer token when the API requires one")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for all studies")
    parser.add_argument("--studies-dir", type=Path, default=STUDIES_DIR, help="where the study files are")
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help=f"where {REPORT} and figures/ are written (default: a new folder under var/reports/; "
        "`examples` regenerates the tracked report)",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="report on the sweeps the service already ran for these studies (same name, grid and seeds) "
        "instead of submitting them again",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help=f"write only the studies run now (default: keep the other studies' sections of {REPORT})",
    )
    arguments = parser.parse_args(argv)

    headers = {"Authorization": f"Bearer {arguments.api_key}"} if arguments.api_key else {}
    all_studies = load_studies(arguments.studies_dir, [])
    studies = load_studies(arguments.studies_dir, arguments.study)
    output_dir = arguments.output_dir or default_output_dir()
    try:
        with httpx.Client(base_url=arguments.url, headers=headers, timeout=60.0) as client:
            start = reuse if arguments.reuse else submit
            submitted = [item for study in studies for item in start(client, study)]
            for item in submitted:
                console.print(f"{label(item)}: sweep {item.sweep_id}, {item.size} jobs")
            wait_for(client, submitted, arguments.timeout)
            output_dir.mkdir(parents=True, exist_ok=True)
            service = Service(client, output_dir)
            report = write_report(service, runs_of(submitted), all_studies, keep_others=not arguments.fresh)
            console.print(f"wrote {report} (served by {arguments.url})")
    except httpx.TransportError as error:
        console.print(unreachable(arguments.url, error), highlight=False)
        return EXIT_SERVICE_ERROR
    except httpx.HTTPStatusError as error:
        console.print(
            f"error: {error.request.method} {error.request.url.path} answered "
            f"{error.response.status_code}: {error.response.text[:200]}",
            highlight=False,
        )
        return EXIT_SERVICE_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
