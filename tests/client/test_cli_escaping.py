"""The CLI prints what anyone with a write key stored as text: rich markup in a name is shown as typed,
and terminal control codes (a title change, a screen clear) are shown escaped instead of acting."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from client.cli import app
from tests.fixtures.service import NEVER_STARTS_SPEC, RunningService

MARKUP = "[bold red]X[/bold red]"
TITLE_CHANGE = "\x1b]0;TITLE\x07"
SCREEN_CLEAR = "\x1b[2J"
HOSTILE_NAME = f"{MARKUP}{TITLE_CHANGE}{SCREEN_CLEAR}\u202eend"
VISIBLE_NAME = r"[bold red]X[/bold red]\x1b]0;TITLE\x07\x1b[2J\u202eend"


def bnlab(service: RunningService, *arguments: str) -> Result:
    environment = {"COLUMNS": "300", "BNLAB_API_KEY": "", "BNLAB_URL": ""}
    return CliRunner().invoke(app, ["--url", service.url, *arguments], env=environment)


@pytest.fixture
def hostile_job(sqlite_service: RunningService) -> Iterator[str]:
    spec: dict[str, Any] = {**NEVER_STARTS_SPEC, "name": HOSTILE_NAME}  # stays queued: no worker has a GPU
    job_id = sqlite_service.submit(spec)
    yield job_id
    bnlab(sqlite_service, "cancel", job_id)


@pytest.mark.parametrize("command", ["show", "jobs"])
def test_a_name_with_markup_and_control_codes_is_printed_as_visible_text(
    sqlite_service: RunningService, hostile_job: str, command: str
) -> None:
    arguments = ("show", hostile_job) if command == "show" else ("jobs", "--limit", "200")
    result = bnlab(sqlite_service, *arguments)
    assert result.exit_code == 0, result.output
    assert VISIBLE_NAME in result.stdout, result.stdout
    assert not any(character in result.stdout for character in "\x1b\x07\u202e"), (
        "a control code reached the terminal"
    )


def test_a_note_with_markup_and_control_codes_is_printed_as_visible_text(
    sqlite_service: RunningService, hostile_job: str
) -> None:
    tagged = bnlab(sqlite_service, "tag", hostile_job, "study", "--note", HOSTILE_NAME)
    assert tagged.exit_code == 0, tagged.output
    shown = bnlab(sqlite_service, "show", hostile_job)
    assert shown.exit_code == 0, shown.output
    note_line = next(line for line in shown.stdout.splitlines() if line.startswith("note"))
    assert VISIBLE_NAME in note_line, shown.stdout
    assert not any(character in shown.stdout for character in "\x1b\x07\u202e"), (
        "a control code reached the terminal"
    )
