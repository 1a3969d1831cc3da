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
    datasets_table,
    job_details,
    jobs_table,
    sweep_details,
    sweeps_table,
    terminal,
    tuned_details,
    visible,
    visible_strings,
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
dataset_app = typer.Typer(
    help="Datasets of your own: upload an NPZ (x, y) or a CSV with a label column, list them, delete one.",
    context_settings=HELP_OPTIONS,
    no_args_is_help=True,
)
app.add_typer(dataset_app, name="dataset")

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
TagOption = Annotated[str | None, typer.Option(metavar="TAG", help="Only those carrying this tag.")]
SweepsOption = Annotated[bool, typer.Option("--sweep", help="The ids are sweeps (with all their jobs).")]
# A running job's delete waits for its worker to stop (the service's delete_wait_seconds, 30 s by default).
DELETE_TIMEOUT_SECONDS = 120.0


class Archived(enum.StrEnum):
    """Which to list: `false` leaves archived work out, `true` lists only it, `all` both."""

    false = "false"
    true = "true"
    all = "all"


ArchivedOption = Annotated[
    Archived,
    typer.Option(metavar="false|true|all", help="false: leave archived out; true: only archived; all."),
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


def resource_path(job_or_sweep_id: str, is_sweep: bool) -> str:
    return f"/v1/{'sweeps' if is_sweep else 'jobs'}/{job_or_sweep_id}"


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
    tag: TagOption = None,
    archived: ArchivedOption = Archived.false,
    as_json: JsonOption = False,
) -> None:
    """List sweeps, newest first: size, how they are executed and their jobs' statuses."""
    params = {"limit": limit, "cursor": cursor, "tag": tag, "archived": archived.value}
    with connected(context) as client:
        page = client.get("/v1/sweeps", params)
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


def read_file(path: Path) -> tuple[str, bytes]:
    try:
        return path.name, path.read_bytes()
    except OSError as error:
        raise fail(f"Cannot read {path}: {error.strerror or error}.") from None


@dataset_app.command("upload")
def dataset_upload(
    context: typer.Context,
    name: Annotated[
        str, typer.Argument(metavar="NAME", help='Its name: specs train on it with dataset: "user:NAME".')
    ],
    data_file: Annotated[Path, typer.Argument(metavar="FILE.npz|csv", help="x and y arrays, or a CSV.")],
    validation: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE", help="The validation split, a file of the same kind (else 20% is held out)."
        ),
    ] = None,
    label_column: Annotated[str, typer.Option(metavar="COLUMN", help="The CSV's label column.")] = "label",
    as_json: JsonOption = False,
) -> None:
    """Upload a dataset: NPZ with x (N, features) or (N, [C,] H, W) and y (labels 0..K-1), or a CSV."""
    files = {"file": read_file(data_file)}
    if validation is not None:
        files["validation_file"] = read_file(validation)
    with connected(context) as client:
        dataset = client.post_files("/v1/datasets", {"name": name, "label_column": label_column}, files)
    if as_json:
        print_json(dataset)
        return
    dataset = visible_strings(dataset)
    shape = "x".join(str(size) for size in dataset["input_shape"])
    typer.echo(
        f"Uploaded {dataset['name']}: {dataset['train_size']} training and {dataset['val_size']} validation "
        f"examples of shape {shape}, {dataset['num_classes']} classes, sha256 {dataset['sha256'][:12]}…"
    )
    typer.echo(f'Train on it with "dataset": "user:{dataset["name"]}".')


@dataset_app.command("list")
def dataset_list(context: typer.Context, as_json: JsonOption = False) -> None:
    """List uploaded datasets by name."""
    with connected(context) as client:
        page = client.get("/v1/datasets")
    if as_json:
        print_json(page)
    elif not page["items"]:
        typer.echo("No datasets. Upload one with bnlab dataset upload NAME FILE.")
    else:
        terminal().print(datasets_table(page["items"]))


@dataset_app.command("delete")
def dataset_delete(
    context: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME", help="The dataset's name.")]
) -> None:
    """Delete an uploaded dataset (refused while a queued or running job trains on it)."""
    with connected(context) as client:
        client.delete(f"/v1/datasets/{name}")
    typer.echo(f"Deleted dataset {visible(name)}.")
