"""The `bnlab` console script: submit, watch, list, show, cancel, compare and export jobs; submit, list,
show and cancel sweeps; tag, archive and delete either; upload, list and delete datasets; list the workers.

    bnlab submit spec.yaml --set learning_rate=1.0 --watch
    bnlab compare A B --target 0.9 --plot curves.png

The service is found at --url, else BNLAB_URL, else http://127.0.0.1:8000; BNLAB_API_KEY, when set, is
sent as a bearer token. Every read command takes --json for scripts. Any failure prints one line on
stderr and exits 1 (2 for a mistyped command); `watch` exits 0 when the job succeeded, 3 failed,
4 diverged, 5 cancelled, and 130 when you leave it with Ctrl-C (the job keeps running).
"""

from __future__ import annotations

import enum
import os
from pathlib import Path
from typing import Annotated

import typer
from bnlab.exports import export_metrics
from rich.text import Text

from client.cli_shared import (
    DELETE_TIMEOUT_SECONDS,
    HELP_OPTIONS,
    Archived,
    ArmOption,
    CursorOption,
    JsonOption,
    Service,
    SweepsOption,
    TagOption,
    TuneOption,
    WatchOption,
    connected,
    fail,
    follow_job,
    plot_format,
    print_json,
    print_page,
    resource_path,
    save_plot,
    service_url,
    show_version,
)
from client.dataset_commands import dataset_app
from client.documents import apply_assignments, load_document, refuse_other_kind
from client.http import DEFAULT_URL
from client.render import (
    compare_table,
    job_details,
    jobs_table,
    terminal,
    visible,
)
from client.render_ics import has_ics, ics_table
from client.render_sweeps import tuned_details
from client.sweep_commands import sweep_app
from client.workers import waiting_line, workers_table

app = typer.Typer(
    help="Train and compare batch-normalization experiments on a bnlab service.",
    context_settings=HELP_OPTIONS,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(sweep_app, name="sweep")
app.add_typer(dataset_app, name="dataset")


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
    tag: TagOption = None,
    archived: Annotated[
        Archived | None,
        typer.Option(
            metavar="false|true|all",
            help="false: leave archived out (default; all with --sweep); true: only archived; all.",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, metavar="N", help="How many jobs per page.")] = 20,
    cursor: CursorOption = None,
    as_json: JsonOption = False,
) -> None:
    """List jobs, newest first (archived ones, and the jobs of archived sweeps, only when asked)."""
    params = {"status": status, "sweep_id": sweep, "tag": tag, "archived": archived and archived.value}
    with connected(context) as client:
        page = client.get("/v1/jobs", {**params, "limit": limit, "cursor": cursor})
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
def delete(
    context: typer.Context,
    ids: Annotated[list[str], typer.Argument(metavar="ID...", help="Jobs (or sweeps, with --sweep).")],
    sweeps: SweepsOption = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete jobs (or sweeps with all their jobs) and everything recorded of them: metrics, telemetry,
    checkpoints. A running job is cancelled first; the delete waits for it to stop."""
    kind = "sweep" if sweeps else "job"
    if not yes:
        listed = visible(", ".join(ids))
        typer.confirm(f"Delete {kind}(s) {listed} and all their data? This cannot be undone", abort=True)
    with connected(context) as client:
        for item_id in ids:
            client.delete(resource_path(item_id, sweeps), timeout=DELETE_TIMEOUT_SECONDS)
            typer.echo(f"Deleted {kind} {visible(item_id)}.")


@app.command()
def tag(
    context: typer.Context,
    item_id: Annotated[str, typer.Argument(metavar="ID", help="A job (or a sweep, with --sweep).")],
    tags: Annotated[list[str] | None, typer.Argument(metavar="TAG...", help="Tags to add.")] = None,
    remove: Annotated[
        list[str] | None, typer.Option("--remove", metavar="TAG", help="A tag to take off (repeatable).")
    ] = None,
    note: Annotated[str | None, typer.Option(metavar="TEXT", help="Replace the free-text note.")] = None,
    sweeps: SweepsOption = False,
    as_json: JsonOption = False,
) -> None:
    """Add tags to a job or sweep (or take some off with --remove), and set its note with --note."""
    path = resource_path(item_id, sweeps)
    with connected(context) as client:
        current = client.get(path).get("tags") or []
        taken_off = set(remove or [])
        wanted = [name for name in dict.fromkeys([*current, *(tags or [])]) if name not in taken_off]
        after = client.patch(path, {"tags": wanted} | ({} if note is None else {"note": note}))
    if as_json:
        print_json(after)
    else:
        tags_shown = " ".join(visible(str(name)) for name in after.get("tags") or []) or "(none)"
        typer.echo(f"Tags of {visible(item_id)}: {tags_shown}.")


@app.command()
def archive(
    context: typer.Context,
    ids: Annotated[list[str], typer.Argument(metavar="ID...", help="Jobs (or sweeps, with --sweep).")],
    sweeps: SweepsOption = False,
    undo: Annotated[bool, typer.Option("--undo", help="Bring them back into the lists.")] = False,
) -> None:
    """Archive jobs or sweeps: kept, but left out of lists unless asked for (--archived true|all)."""
    with connected(context) as client:
        for item_id in ids:
            client.patch(resource_path(item_id, sweeps), {"archived": not undo})
            typer.echo(f"{'Unarchived' if undo else 'Archived'} {visible(item_id)}.")


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
    """Compare jobs side by side: final and best values, steps to target and speedups, and for jobs run
    with telemetry their gradient-based ICS per layer; with --arm, the arms over matched seeds with 95%
    intervals and verdicts."""
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
        if has_ics(comparison):
            terminal().print(Text(), ics_table(comparison))
        if comparison.get("arms"):
            terminal().print(Text(), tuned_details(comparison["arms"]))
    if plot and picture is not None:
        save_plot(plot, picture)


@app.command("plot")
def plot_job(
    context: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="ID")],
    ics: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Save the 15/50/85th percentiles of a unit's input over training (.png or .svg).",
        ),
    ] = None,
    ics_gradient: Annotated[
        Path | None,
        typer.Option(
            "--ics-gradient",
            metavar="FILE",
            help="Save Santurkar et al.'s gradient-based ICS per layer over training (.png or .svg).",
        ),
    ] = None,
    compare_with: Annotated[
        list[str] | None,
        typer.Option("--compare-with", metavar="ID", help="A job drawn beside it (repeat for more)."),
    ] = None,
) -> None:
    """Save a job's internal-covariate-shift pictures (need telemetry_every > 0): the paper's Fig. 1(b,c)
    with --ics, the gradient-based ICS (‖G − G′‖₂ and cos(G, G′) per layer) with --ics-gradient."""
    pictures = {path: route for path, route in ((ics, "ics"), (ics_gradient, "ics-gradient")) if path}
    if not pictures:
        raise fail("plot needs --ics FILE, --ics-gradient FILE or both.")
    formats = {path: plot_format(path) for path in pictures}
    with connected(context) as client:
        drawn = {
            path: client.get_bytes(
                f"/v1/jobs/{job_id}/plots/{route}",
                {"format": formats[path], "compare_with": compare_with or None},
            )
            for path, route in pictures.items()
        }
    for path, picture in drawn.items():
        save_plot(path, picture)


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
