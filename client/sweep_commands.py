"""`bnlab sweep …`: submit a grid of jobs, watch it, list sweeps, show one's aggregated results, cancel
one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from client.cli_shared import (
    HELP_OPTIONS,
    Archived,
    ArchivedOption,
    ArmOption,
    CursorOption,
    Execution,
    JsonOption,
    TagOption,
    TuneOption,
    connected,
    follow_sweep,
    print_json,
    print_page,
)
from client.documents import load_document, refuse_other_kind
from client.render import terminal
from client.render_sweeps import sweep_details, sweeps_table, tuned_details

sweep_app = typer.Typer(
    help="Grids of jobs: submit one, watch it, list them, show one's aggregated results, cancel one.",
    context_settings=HELP_OPTIONS,
    no_args_is_help=True,
)


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
        typer.Option(
            metavar="VALUE", help="With --arm: the baseline arm, a JSON value (false) or a word (none)."
        ),
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
