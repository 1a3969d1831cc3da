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
from collections.abc import Sequence
from pathlib import Path

import httpx

EXAMPLES_DIR = Path(__file__).resolve().parent
if str(EXAMPLES_DIR) not in sys.path:  # the report's modules sit beside the script, however it is loaded
    sys.path.insert(0, str(EXAMPLES_DIR))

from studies_model import Service, Study, Submitted, load_studies  # noqa: E402
from studies_report import REPORT, write_report  # noqa: E402
from sweep_client import (  # noqa: E402
    Waiting,
    add_service_arguments,
    console,
    default_output_dir,
    get_json,
    submit_sweep,
    wait_for,
    with_service,
)

STUDIES_DIR = EXAMPLES_DIR / "studies"
REUSE_PAGE = 100


def submit(client: httpx.Client, study: Study) -> list[Submitted]:
    """Every sweep of the study, submitted."""
    submitted = []
    for body in study.sweeps:
        created = submit_sweep(client, body, who=study.slug)
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
    add_service_arguments(parser, REPORT, waits_for="all studies")
    parser.add_argument("--study", action="append", default=[], help="a study file's name (repeatable)")
    parser.add_argument("--studies-dir", type=Path, default=STUDIES_DIR, help="where the study files are")
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

    all_studies = load_studies(arguments.studies_dir, [])
    studies = load_studies(arguments.studies_dir, arguments.study)
    output_dir = arguments.output_dir or default_output_dir("studies")

    def run(client: httpx.Client) -> None:
        start = reuse if arguments.reuse else submit
        submitted = [item for study in studies for item in start(client, study)]
        for item in submitted:
            console.print(f"{label(item)}: sweep {item.sweep_id}, {item.size} jobs")
        waiting = [Waiting(item.sweep_id, item.size, label(item)) for item in submitted]
        views = wait_for(client, waiting, arguments.timeout)
        for item in submitted:
            item.view = views[item.sweep_id]
        output_dir.mkdir(parents=True, exist_ok=True)
        service = Service(client, output_dir)
        report = write_report(service, runs_of(submitted), all_studies, keep_others=not arguments.fresh)
        console.print(f"wrote {report} (served by {arguments.url})")

    return with_service(arguments.url, arguments.api_key, run)


if __name__ == "__main__":
    sys.exit(main())
