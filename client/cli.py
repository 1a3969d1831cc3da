"""The `bnlab` console script: submit, watch, list, show, cancel, compare and export jobs; submit, list,
show and cancel sweeps; list the workers.

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
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated, Any

import typer
from bnlab.exports import export_metrics
from rich.table import Table
from rich.text import Text
from typer.core import TyperArgument, TyperOption

from client.documents import DocumentError, apply_assignments, load_document, refuse_other_kind
from client.http import DEFAULT_URL, BnlabClient, ServiceError
from client.render import (
    compare_table,
    job_details,
    jobs_table,
    sweep_details,
    sweeps_table,
    terminal,
    tuned_details,
    visible,
)
from client.watch import print_events, show_events, show_sweep_progress
from client.workers import waiting_line, workers_table

HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}


def _placeholder(param: TyperArgument | TyperOption, ctx: object) -> str | None:
    """What help shows after a parameter: its metavar (ACCURACY, FILE, ID) or nothing, never a Python type
    such as `<str>` or `<bool>` (an argument is already named by its metavar; a flag takes no value)."""
    if isinstance(param, TyperArgument) or getattr(param, "is_flag", False):
        return None
    return param.metavar


for _parameter_class in (TyperArgument, TyperOption):
    setattr(_parameter_class, "display_type_rich", _placeholder)  # noqa: B010 (a method of typer's)
EXIT_ERROR = 1
EXIT_DETACHED = 130  # what a shell reports for a program left with Ctrl-C
PLOT_FORMATS = {".png": "png", ".svg": "svg"}

app = typer.Typer(
    help="Train and compare batch-normalization experiments on a bnlab service.",
    context_settings=HELP_OPTIONS,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
sweep_app = typer.Typer(
    help="Grids of jobs: submit one, watch it, list them, show one's aggregated results, cancel one.",
    context_settings=HELP_OPTIONS,
    no_args_is_help=True,
)
app.add_typer(sweep_app, name="sweep")

JsonOption = Annotated[bool, typer.Option("--json", help="Print the service's JSON answer, for scripts.")]
ArmOption = Annotated[
    str | None,
    typer.Option(
        metavar="FIELD", help="A spec field whose values are arms compared over seeds (e.g. batch_norm)."
    ),
]
TuneOption = Annotated[
    list[str] | None,
    typer.Option(metavar="FIELD", help="With --arm: a field each arm takes its best value of (repeatable)."),
]
WatchOption = Annotated[bool, typer.Option("--watch", help="Then follow it live until it finishes.")]
CursorOption = Annotated[
    str | None, typer.Option(metavar="CURSOR", help="The page after this cursor (printed below a page).")
]


class Execution(enum.StrEnum):
    """How a sweep's jobs are trained (`POST /v1/sweeps`'s `execution`)."""

    fused = "fused"
    separate = "separate"


@dataclass(frozen=True)
class Service:
    """Where the service is and how to authenticate to it, from the global options."""

    url: str
    api_key: str | None


def show_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"bnlab {package_version('bnlab')}")
        raise typer.Exit()


def service_url(url: str) -> str:
    """`127.0.0.1:8000` means http://127.0.0.1:8000; a scheme other than http(s) is a usage error."""
    if "://" not in url:
        return f"http://{url}"
    scheme = url.split("://", 1)[0].lower()
    if scheme not in {"http", "https"}:
        raise typer.BadParameter(f"{url} must be an http:// or https:// URL.", param_hint="--url")
    return url


@app.callback()
def main(
    context: typer.Context,
    url: Annotated[
        str,
        typer.Option(
            "--url",
            envvar="BNLAB_URL",
            metavar="URL",
            help="The service's base URL (http:// when it names no scheme).",
            show_default=True,
        ),
    ] = DEFAULT_URL,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=show_version, is_eager=True, help="Print bnlab's version and exit."
        ),
    ] = False,
) -> None:
    """Train and compare batch-normalization experiments on a bnlab service.

    BNLAB_API_KEY (an environment variable, so it stays out of the shell history) is sent as a bearer token.
    """
    context.obj = Service(url=service_url(url), api_key=os.environ.get("BNLAB_API_KEY") or None)


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


def follow_sweep(client: BnlabClient, sweep_id: str) -> None:
    """Draws a sweep's progress to its end and exits with its outcome; Ctrl-C detaches (never cancels)."""
    try:
        exit_status = show_sweep_progress(client, sweep_id, terminal())
    except KeyboardInterrupt:
        typer.echo(
            f"Detached; sweep {sweep_id} goes on (bnlab sweep watch {sweep_id} to follow it again).", err=True
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
        spec = apply_assignments(
            refuse_other_kind(load_document(spec_file), spec_file, "job"), assignments or []
        )
        job = client.post("/v1/jobs", spec)
        if as_json:
            print_json(job)
        else:
            typer.echo(f"Submitted job {job['id']} ({job.get('status', 'queued')}).")
            if (waiting := waiting_line(job)) is not None:
                typer.echo(waiting)
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
        str | None,
        typer.Option(metavar="STATUS", help="Only jobs in this status (queued, running, succeeded, ...)."),
    ] = None,
    sweep: Annotated[str | None, typer.Option(metavar="ID", help="Only the jobs of this sweep.")] = None,
    limit: Annotated[int, typer.Option(min=1, metavar="N", help="How many jobs per page.")] = 20,
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
def workers(
    context: typer.Context,
    include_gone: Annotated[
        bool, typer.Option("--all", help="Also the workers that stopped or went silent (the last day).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """List the workers: their queues, device, what they train and when they were last seen."""
    with connected(context) as client:
        page = client.get("/v1/workers", {"include": "gone" if include_gone else None})
    when_empty = "No workers." if include_gone else "No live workers (bnlab workers --all lists gone ones)."
    print_page(page, as_json, workers_table, when_empty, "bnlab workers")


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
    target: Annotated[
        float | None, typer.Option(metavar="ACCURACY", help="Accuracy that counts as reached.")
    ] = None,
    baseline: Annotated[
        str | None, typer.Option(metavar="ID", help="The job speedups are relative to (default: the first).")
    ] = None,
    metric: Annotated[str, typer.Option(metavar="NAME", help="The metric to compare.")] = "val_accuracy",
    plot: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Also save the curves to this .png or .svg.")
    ] = None,
    arm: ArmOption = None,
    tune: TuneOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compare jobs side by side: final and best values, steps to target and speedups; with --arm, the arms
    over matched seeds with 95% intervals and verdicts."""
    if len(job_ids) < 2:
        raise fail("compare needs two or more job ids (bnlab show ID shows one job).")
    params = {"ids": job_ids, "metric": metric, "target": target, "baseline": baseline}
    picture_format = plot_format(plot) if plot else None
    with connected(context) as client:
        comparison = client.get("/v1/compare", {**params, "arm": arm, "tune": tune or None})
        picture = client.get_bytes("/v1/compare/plot", {**params, "format": picture_format}) if plot else None
    if as_json:
        print_json(comparison)
    else:
        terminal().print(compare_table(comparison))
        if comparison.get("arms"):
            terminal().print(Text(), tuned_details(comparison["arms"]))
    if plot and picture is not None:
        save_plot(plot, picture)


@app.command("plot")
def plot_job(
    context: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="ID")],
    ics: Annotated[
        Path,
        typer.Option(
            metavar="FILE",
            help="Save the 15/50/85th percentiles of a unit's input over training (.png or .svg).",
        ),
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


class ExportFormat(enum.StrEnum):
    """The file `bnlab export` writes."""

    csv = "csv"
    parquet = "parquet"


@app.command()
def export(
    context: typer.Context,
    output: Annotated[Path, typer.Option("-o", "--output", help="The file to write.")],
    job_ids: Annotated[list[str] | None, typer.Argument(metavar="[ID...]", help="Jobs to export.")] = None,
    sweep: Annotated[
        str | None,
        typer.Option(metavar="ID", help="Every job of this sweep, with its grid values as columns."),
    ] = None,
    file_format: Annotated[
        ExportFormat, typer.Option("--format", help="parquet needs pyarrow installed.")
    ] = ExportFormat.csv,
    name: Annotated[
        list[str] | None, typer.Option(help="Only this series (repeatable); every series by default.")
    ] = None,
) -> None:
    """Write every metric point of jobs (or of a sweep) to one file: job_id, name, step, value."""
    with connected(context) as client:
        points = export_metrics(client, output, job_ids or [], sweep, file_format.value, name)
    typer.echo(f"Wrote {points} points to {output}.")


@sweep_app.command("submit")
def sweep_submit(
    context: typer.Context,
    sweep_file: Annotated[
        Path, typer.Argument(metavar="SWEEP.yaml|json", help="Name, base spec, grid, seeds.")
    ],
    execution: Annotated[
        Execution | None,
        typer.Option(
            metavar="fused|separate",
            help="fused: train each group of alike jobs as one stacked model (the service's default); "
            "separate: a task per job. Overrides the file's `execution`.",
        ),
    ] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Then follow the sweep's overall progress.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Submit a sweep: every combination of the grid's values, for each seed."""
    with connected(context) as client:
        document = refuse_other_kind(load_document(sweep_file), sweep_file, "sweep")
        if execution is not None:
            document = {**document, "execution": execution.value}
        sweep = client.post("/v1/sweeps", document)
        if as_json:
            print_json(sweep)
        else:
            typer.echo(f"Submitted sweep {sweep['id']} ({sweep['size']} jobs).")
        if watch:
            follow_sweep(client, sweep["id"])


@sweep_app.command("watch")
def sweep_watch(context: typer.Context, sweep_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Follow a sweep until every job has finished: training steps done of all, model-steps per second,
    the time left and the jobs' statuses. Ctrl-C stops watching; the sweep goes on. Exits 3 when a job
    failed."""
    with connected(context) as client:
        follow_sweep(client, sweep_id)


@sweep_app.command("list")
def sweep_list(
    context: typer.Context,
    limit: Annotated[int, typer.Option(min=1, metavar="N", help="How many sweeps per page.")] = 20,
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
    # Counted by the service before it cancelled: the status counts it answers with already show the
    # queued jobs cancelled, and only the running ones (a fused group's, say) still unfinished.
    typer.echo(f"Cancel requested for the {sweep['cancel_requested']} unfinished jobs of sweep {sweep_id}.")


@sweep_app.command("show")
def sweep_show(
    context: typer.Context,
    sweep_id: Annotated[str, typer.Argument(metavar="ID")],
    arm: ArmOption = None,
    tune: TuneOption = None,
    baseline: Annotated[
        str | None,
        typer.Option(metavar="VALUE", help="With --arm: the baseline arm, a JSON value (e.g. false)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show a sweep: status counts, one row per grid point (mean [95% interval] over seeds) and one per
    fused group; with --arm, the arms compared at their best --tune setting."""
    params = {"arm": arm, "tune": tune or None, "baseline": baseline}
    with connected(context) as client:
        sweep = client.get(f"/v1/sweeps/{sweep_id}", params)
    if as_json:
        print_json(sweep)
        return
    terminal().print(sweep_details(sweep))
    if sweep.get("tuned"):
        terminal().print(Text(), tuned_details(sweep["tuned"]))
