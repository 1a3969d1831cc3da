"""What the job and sweep routes share for looking after past work: the `PATCH` body (tags, note,
archived), the `?tag=` and `?archived=` list filters, and deleting a job or sweep that may still be running.

A running job is cancelled cooperatively (the flag its training loop checks every few steps) and the delete
waits for it to stop, up to `delete_wait_seconds`: its worker would otherwise go on writing points for a job
that is gone. Past that wait the answer is a 409 saying to retry; the cancel stays requested.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Literal

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from api.errors import conflict, error_answer, not_found
from core.housekeeping import MAX_NOTE_LENGTH, MAX_TAGS, TAG_PATTERN
from core.store import DeleteOutcome

Tag = Annotated[str, StringConstraints(pattern=TAG_PATTERN)]
_STOP_POLL_SECONDS = 0.2


class LabelsIn(BaseModel):
    """What a `PATCH` changes; a field left out is kept as it is."""

    model_config = ConfigDict(extra="forbid")

    tags: list[Tag] | None = Field(
        None,
        max_length=MAX_TAGS,
        description=f"replaces the tags: at most {MAX_TAGS}, each 1-32 letters, digits, '.', '_', ':' or '-'",
    )
    note: str | None = Field(None, max_length=MAX_NOTE_LENGTH, description="free text; replaces the note")
    archived: bool | None = Field(None, description="archived work is left out of lists by default")

    @field_validator("note")
    @classmethod
    def _no_nul(cls, note: str | None) -> str | None:
        if note is not None and "\x00" in note:  # PostgreSQL's text refuses it
            raise ValueError("the note holds a NUL character")
        return note


TagFilter = Annotated[str | None, Query(pattern=TAG_PATTERN, description="only those carrying this tag")]
ArchivedFilter = Annotated[
    Literal["false", "true", "all"],
    Query(description="false: leave archived work out (default); true: only archived; all: both"),
]


def archived_choice(archived: str) -> bool | None:
    """The store's `archived` argument for a `?archived=` value."""
    return None if archived == "all" else archived == "true"


STILL_RUNNING = error_answer(409, "it did not stop within the wait after its cancel; retry")


def stop_then_delete(
    describe: str,
    unfinished_job_ids: Callable[[], list[str]],
    request_cancel: Callable[[str], object],
    delete: Callable[[], DeleteOutcome],
    wait_seconds: float,
) -> None:
    """Cancel every unfinished job (`unfinished_job_ids`), wait until none is left, then `delete`. Raises
    404 when it vanished meanwhile and 409 when a job did not stop within `wait_seconds`."""
    deadline = time.monotonic() + wait_seconds
    while True:
        pending = unfinished_job_ids()
        if not pending:
            outcome = delete()
            if outcome == "deleted":
                return
            if outcome == "not_found":
                raise not_found(describe)
            # "unfinished": a job is running again in between; look again after the pause below
        if time.monotonic() >= deadline:
            raise conflict(
                f"{describe} is still stopping after its cancel ({len(pending)} job(s) running); "
                "retry the delete in a few seconds"
            )
        for job_id in pending:
            request_cancel(job_id)
        time.sleep(_STOP_POLL_SECONDS)
