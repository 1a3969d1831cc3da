"""What every `bnlab` command shares: the service it talks to, options, one-line failures, output."""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperArgument, TyperOption

from client.documents import DocumentError
from client.http import BnlabClient, ServiceError
from client.render import (
    terminal,
    visible,
)
from client.watch import print_events, show_events, show_sweep_progress

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


def resource_path(job_or_sweep_id: str, is_sweep: bool) -> str:
    return f"/v1/{'sweeps' if is_sweep else 'jobs'}/{job_or_sweep_id}"


def read_file(path: Path) -> tuple[str, bytes]:
    try:
        return path.name, path.read_bytes()
    except OSError as error:
        raise fail(f"Cannot read {path}: {error.strerror or error}.") from None
