"""The `bnlab` console script: submit, watch, list, show, cancel and compare jobs; submit, list, show and
cancel sweeps.

    bnlab submit spec.yaml --set learning_rate=1.0 --watch
    bnlab compare A B --target 0.9 --plot curves.png

The service is found at --url, else BNLAB_URL, else http://127.0.0.1:8000; BNLAB_API_KEY, when set, is
sent as a bearer token. Every read command takes --json for scripts. Any failure prints one line on
stderr and exits 1 (2 for a mistyped command); `watch` exits 0 when the job succeeded, 3 failed,
4 diverged, 5 cancelled, and 130 when you leave it with Ctrl-C (the job keeps running).
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from client.documents import DocumentError, apply_assignments, load_document
from client.http import DEFAULT_URL, TERMINAL_STATUSES, BnlabClient, ServiceError
from client.render import (
    compare_table,
    job_details,
    jobs_table,
    sweep_details,
    sweeps_table,
    terminal,
    visible,
)
from client.watch import print_events, show_events, show_sweep_progress

EXIT_ERROR = 1
EXIT_DETACHED = 130  # what a shell reports for a program left with Ctrl-C
PLOT_FORMATS = {".png": "png", ".svg": "svg"}

app = typer.Typer(
    help="Train and compare batch-normalization experiments on a bnlab service.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
sweep_app = typer.Typer(
    help="Grids of jobs: submit one, list them, show one's aggregated results, cancel one.",
    no_args_is_help=True,
)
app.add_typer(sweep_app, name="sweep")

JsonOption = Annotated[bool, typer.Option("--json", help="Print the service's JSON answer, for scripts.")]
WatchOption = Annotated[bool, typer.Option("--watch", help="Then follow it live until it finishes.")]
CursorOption = Annotated[str | None, typer.Option(help="The page after this cursor (printed below a page).")]


class Execution(enum.StrEnum):
    """How a sweep's jobs are trained (`POST /v1/sweeps`'s `execution`)."""

    fused = "fused"
    separate = "separate"


@dataclass(frozen=True)
class Service:
    """Where the service is and how to authenticate to it, from the global options."""

    url: str
    api_key: str | None


@app.callback()
def main(
    context: typer.Context,
    url: Annotated[
        str, typer.Option("--url", envvar="BNLAB_URL", help="The service's base URL.", show_default=True)
    ] = DEFAULT_URL,
) -> None:
    """Train and compare batch-normalization experiments on a bnlab service.

    BNLAB_API_KEY (an environment variable, so it stays out of the shell history) is sent as a bearer token.
    """
    context.obj = Service(url=url, api_key=os.environ.get("BNLAB_API_KEY") or None)


@contextmanager
def connected(context: typer.Context) -> Iterator[BnlabClient]:
    """A client for the service; a failure talking to it becomes one line on stderr and exit status 1."""
    service: Service = context.obj
    try:
        with BnlabClient(service.url, service.api_key) as client:
            yield client
    except (ServiceError, DocumentError) as error:
        typer.echo(f"error: {visible(str(error))}", err=True)
        raise typer.Exit(EXIT_ERROR) from None


def fail(message: str) -> typer.Exit:
    typer.echo(f"error: {visible(message)}", err=True)
    return typer.Exit(EXIT_ERROR)


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


def print_page(
    page: dict[str, Any],
    as_json: bool,
    table: Callable[[list[dict[str, Any]]], Table],
    when_empty: str,
    command: str,
) -> None:
    """A page of a list route: its JSON, or its items as a table and the command for the next page."""
    if as_json:
        print_json(page)
    elif not page["items"]:
        typer.echo(when_empty)
    else:
        terminal().print(table(page["items"]))
        if page.get("next_cursor"):
            typer.echo(f"More: {command} --cursor {page['next_cursor']}")


def follow_job(client: BnlabClient, job_id: str, as_json: bool) -> None:
    """Follows a job's stream to its end and exits with its outcome; Ctrl-C detaches (never cancels)."""
    events = client.job_events(job_id)
    try:
        exit_status = print_events(events) if as_json else show_events(job_id, events, terminal())
    except KeyboardInterrupt:
        typer.echo(
            f"Detached; job {job_id} keeps running (bnlab watch {job_id} to follow it again).", err=True
        )
        raise typer.Exit(EXIT_DETACHED) from None
    raise typer.Exit(exit_status)


def plot_format(path: Path) -> str:
    try:
        return PLOT_FORMATS[path.suffix.lower()]
    except KeyError:
        raise fail(f"{path} must end in .png or .svg (the picture's format).") from None


def save_plot(path: Path, picture: bytes) -> None:
    try:
        path.write_bytes(picture)
    except OSError as error:
        raise fail(f"Cannot write {path}: {error.strerror or error}.") from None
    typer.echo(f"Wrote {path} ({len(picture):,} bytes).")


@app.command()
def submit(
    context: typer.Context,
    spec_file: Annotated[Path, typer.Argument(metavar="SPEC.yaml|json", help="The job spec.")],
    assignments: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Override a field, e.g. learning_rate=1.0 or architecture.hidden=[50,50] (repeatable).",
        ),
    ] = None,
    watch: WatchOption = False,
    as_json: JsonOption = False,
) -> None:
    """Submit a job spec (YAML or JSON) for training."""
    with connected(context) as client:
        spec = apply_assignments(load_document(spec_file), assignments or [])
        job = client.post("/v1/jobs", spec)
        if as_json:
            print_json(job)
        else:
            typer.echo(f"Submitted job {job['id']} ({job.get('status', 'queued')}).")
        if watch:
            follow_job(client, job["id"], as_json)


@app.command()
def watch(
    context: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: Annotated[bool, typer.Option("--json", help="Print each event as a JSON line.")] = False,
) -> None:
    """Follow a job live: step/steps, steps per second, ETA and the latest val accuracy.

    Ctrl-C stops watching; the job keeps running. Exits 0 when the job succeeded, 3 failed, 4 diverged,
    5 cancelled.
    """
    with connected(context) as client:
        follow_job(client, job_id, as_json)


@app.command()
def jobs(
    context: typer.Context,
    status: Annotated[
        str | None, typer.Option(help="Only jobs in this status (queued, running, succeeded, ...).")
    ] = None,
    sweep: Annotated[str | None, typer.Option(help="Only the jobs of this sweep.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many jobs per page.")] = 20,
    cursor: CursorOption = None,
    as_json: JsonOption = False,
) -> None:
    """List jobs, newest first."""
    with connected(context) as client:
        page = client.get("/v1/jobs", {"status": status, "sweep_id": sweep, "limit": limit, "cursor": cursor})
    print_page(page, as_json, jobs_table, "No jobs.", "bnlab jobs")


@app.command()
def show(
    context: typer.Context, job_id: Annotated[str, typer.Argument(metavar="ID")], as_json: JsonOption = False
) -> None:
    """Show one job: status, progress, summary, how it is executed (in a fused group or alone) and spec."""
    with connected(context) as client:
        job = client.get(f"/v1/jobs/{job_id}")
    if as_json:
        print_json(job)
    else:
        terminal().print(job_details(job))


@app.command()
def cancel(context: typer.Context, job_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Ask a queued or running job to stop (it stops within a few seconds)."""
    with connected(context) as client:
        client.post(f"/v1/jobs/{job_id}/cancel")
    typer.echo(f"Cancel requested for job {job_id}.")


@app.command()
def compare(
    context: typer.Context,
    job_ids: Annotated[list[str], typer.Argument(metavar="ID...", help="Two or more jobs.")],
    target: Annotated[float | None, typer.Option(help="Accuracy that counts as reached.")] = None,
    baseline: Annotated[
        str | None, typer.Option(help="The job speedups are relative to (default: the first).")
    ] = None,
    metric: Annotated[str, typer.Option(help="The metric to compare.")] = "val_accuracy",
    plot: Annotated[Path | None, typer.Option(help="Also save the curves to this .png or .svg.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Compare jobs side by side: final and best values, steps to target and speedups."""
    params = {"ids": job_ids, "metric": metric, "target": target, "baseline": baseline}
    picture_format = plot_format(plot) if plot else None
    with connected(context) as client:
        comparison = client.get("/v1/compare", params)
        picture = client.get_bytes("/v1/compare/plot", {**params, "format": picture_format}) if plot else None
    if as_json:
        print_json(comparison)
    else:
        terminal().print(compare_table(comparison))
    if plot and picture is not None:
        save_plot(plot, picture)


@app.command("plot")
def plot_job(
    context: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="ID")],
    ics: Annotated[
        Path,
        typer.Option(help="Save the 15/50/85th percentiles of a unit's input over training (.png or .svg)."),
    ],
    compare_with: Annotated[
        str | None, typer.Option("--compare-with", metavar="ID", help="A second job drawn beside it.")
    ] = None,
) -> None:
    """Save a job's internal-covariate-shift picture (the paper's Fig. 1(b,c); needs telemetry_every > 0)."""
    picture_format = plot_format(ics)
    params = {"format": picture_format, "compare_with": compare_with}
    with connected(context) as client:
        picture = client.get_bytes(f"/v1/jobs/{job_id}/plots/ics", params)
    save_plot(ics, picture)


@sweep_app.command("submit")
def sweep_submit(
    context: typer.Context,
    sweep_file: Annotated[
        Path, typer.Argument(metavar="SWEEP.yaml|json", help="Name, base spec, grid, seeds.")
    ],
    execution: Annotated[
        Execution | None,
        typer.Option(
            help="fused: train each group of alike jobs as one stacked model (the service's default); "
            "separate: a task per job. Overrides the file's `execution`."
        ),
    ] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Then follow the sweep's overall progress.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Submit a sweep: every combination of the grid's values, for each seed."""
    with connected(context) as client:
        document = load_document(sweep_file)
        if execution is not None:
            document = {**document, "execution": execution.value}
        sweep = client.post("/v1/sweeps", document)
        if as_json:
            print_json(sweep)
        else:
            typer.echo(f"Submitted sweep {sweep['id']} ({sweep['size']} jobs).")
        if watch:
            raise typer.Exit(show_sweep_progress(client, sweep["id"], terminal()))


@sweep_app.command("list")
def sweep_list(
    context: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="How many sweeps per page.")] = 20,
    cursor: CursorOption = None,
    as_json: JsonOption = False,
) -> None:
    """List sweeps, newest first: size, how they are executed and their jobs' statuses."""
    with connected(context) as client:
        page = client.get("/v1/sweeps", {"limit": limit, "cursor": cursor})
    print_page(page, as_json, sweeps_table, "No sweeps.", "bnlab sweep list")


@sweep_app.command("cancel")
def sweep_cancel(context: typer.Context, sweep_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Ask every unfinished job of a sweep to stop: queued ones never start, running ones stop within a few
    seconds (a fused group trains on with the jobs that are left)."""
    with connected(context) as client:
        sweep = client.post(f"/v1/sweeps/{sweep_id}/cancel")
    counts = sweep.get("status_counts") or {}
    unfinished = sum(count for status, count in counts.items() if status not in TERMINAL_STATUSES)
    typer.echo(f"Cancel requested for the {unfinished} unfinished jobs of sweep {sweep_id}.")


@sweep_app.command("show")
def sweep_show(
    context: typer.Context,
    sweep_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: JsonOption = False,
) -> None:
    """Show a sweep: status counts, one row per grid point (mean ± std over seeds) and one per fused group."""
    with connected(context) as client:
        sweep = client.get(f"/v1/sweeps/{sweep_id}")
    if as_json:
        print_json(sweep)
        return
    terminal().print(sweep_details(sweep))
