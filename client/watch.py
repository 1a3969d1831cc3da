"""`bnlab watch`: a job's event stream drawn as a rich progress bar, and the outcome as an exit status.

The bar shows step/steps, steps per second, the time left at that rate and the latest validation
accuracy; it is fed only by the stream (`progress`, `metrics` and `status` events). Leaving (Ctrl-C) is
the caller's business: watching never cancels a job.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterable
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from client.http import TERMINAL_STATUSES, BnlabClient, JobEvent
from client.render import MISSING, number, visible

# Exit statuses of `watch` (and `submit --watch`), so scripts can tell outcomes apart. 1 is taken by
# errors talking to the service and 2 by usage errors.
EXIT_BY_STATUS = {"succeeded": 0, "failed": 3, "diverged": 4, "cancelled": 5}
SWEEP_POLL_SECONDS = 1.0


def duration(seconds: float | None) -> str:
    """Seconds as h:mm:ss or m:ss, the way progress bars show time left."""
    if seconds is None or seconds < 0:
        return MISSING
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class JobProgressBar:
    """Keeps the latest known state of one job and draws it as one progress bar."""

    def __init__(self, job_id: str, console: Console) -> None:
        self.job_id = job_id
        self.status = "queued"
        self.step = 0
        self.steps: int | None = None
        self.steps_per_second: float | None = None
        self.val_accuracy: float | None = None
        self.final: dict[str, Any] = {}
        self._progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[details]}", markup=False),
            console=console,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> JobProgressBar:
        self._progress.start()
        self._task = self._progress.add_task(self._description(), total=None, details=self._details())
        return self

    def __exit__(self, *_exception: object) -> None:
        self._progress.stop()

    def handle(self, event: JobEvent) -> None:
        """Folds one event into the state and redraws."""
        data = event.data
        if event.kind == "progress":
            self.step = int(data.get("step") or 0)
            self.steps = data.get("steps") or self.steps
            self.steps_per_second = data.get("steps_per_second")
        elif event.kind == "metrics":
            values = data.get("values") or {}
            if values.get("val_accuracy") is not None:
                self.val_accuracy = values["val_accuracy"]
        elif event.kind == "status":
            self.status = visible(str(data.get("status")))
            if event.is_terminal:
                self.final = data
                self.step = int(data.get("step") or self.step)
        self._redraw()

    def _description(self) -> str:
        return f"{self.job_id[:8]} {self.status}"

    def _details(self) -> str:
        """Steps per second, the time left at that rate, and the latest validation accuracy."""
        rate = self.steps_per_second
        remaining = None
        if self.final:
            remaining = 0.0
        elif rate and self.steps is not None:
            remaining = (self.steps - self.step) / rate
        return f"{number(rate)} steps/s  ETA {duration(remaining)}  val acc {number(self.val_accuracy)}"

    def _redraw(self) -> None:
        if self._task is None:
            return
        self._progress.update(
            self._task,
            description=self._description(),
            total=self.steps,
            completed=self.step,
            details=self._details(),
        )

    def outcome_line(self) -> str:
        """One sentence on how the job ended, from its terminal status event."""
        summary = self.final.get("summary") or {}
        if self.status == "succeeded":
            return (
                f"Job {self.job_id} succeeded after {self.step:,} steps: "
                f"val accuracy {number(summary.get('final_val_accuracy'))} "
                f"(best {number(summary.get('best_val_accuracy'))}), "
                f"steps to target {number(summary.get('steps_to_target'))}."
            )
        if self.status == "diverged":
            return f"Job {self.job_id} diverged at step {number(summary.get('diverged_at_step'))}."
        if self.status == "failed":
            return f"Job {self.job_id} failed: {visible(str(self.final.get('error') or 'no reason given'))}."
        return f"Job {self.job_id} was cancelled at step {self.step:,}."


def show_events(job_id: str, events: Iterable[JobEvent], console: Console) -> int:
    """Draws the events on a progress bar until the terminal status; returns the exit status for it."""
    stream = iter(events)
    first = next(stream, None)  # connect (and fail) before drawing anything
    with JobProgressBar(job_id, console) as bar:
        for event in itertools.chain([first] if first else [], stream):
            bar.handle(event)
    console.print(
        bar.outcome_line(),
        style="green" if bar.status == "succeeded" else "red",
        highlight=False,
        markup=False,
    )
    return EXIT_BY_STATUS.get(bar.status, 1)


def print_events(events: Iterable[JobEvent]) -> int:
    """`--json`: one JSON object per event and line; returns the exit status for the terminal status."""
    final_status = None
    for event in events:
        line = {"event": event.kind, "id": event.last_event_id, "data": event.data}
        typer.echo(json.dumps(line))
        if event.is_terminal:
            final_status = event.data.get("status")
    return EXIT_BY_STATUS.get(str(final_status), 1)


def sweep_details(sweep: dict[str, Any]) -> str:
    """The bar's text: model-steps per second and the time left at that rate (while jobs are unfinished),
    jobs finished and their statuses."""
    progress = sweep.get("progress") or {}
    counts: dict[str, int] = sweep.get("status_counts") or {}
    finished = sum(count for status, count in counts.items() if status in TERMINAL_STATUSES)
    listed = " ".join(f"{status} {count}" for status, count in counts.items() if count)
    jobs = f"jobs {finished}/{sum(counts.values())}  {listed}"
    if counts and finished == sum(counts.values()):
        return jobs  # nothing trains any more: no rate, no time left
    rate = number(progress.get("model_steps_per_second"))
    return f"{rate} model-steps/s  ETA {duration(progress.get('eta_seconds'))}  {jobs}"


def show_sweep_progress(client: BnlabClient, sweep_id: str, console: Console) -> int:
    """Polls a sweep until every job has finished, as one bar of training steps; exits 3 when any job
    failed.

    Sweeps have no event stream, so this polls once a second. Diverged and cancelled jobs are results of
    a sweep (a learning rate that was too high), not errors of the command. Ctrl-C is the caller's
    business: watching never cancels a sweep.
    """
    progress = Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps  {task.fields[details]}", markup=False),
        console=console,
    )
    with progress:
        task = progress.add_task(f"sweep {sweep_id[:8]}", total=None, details="")
        while True:
            sweep = client.get(f"/v1/sweeps/{sweep_id}")
            counts: dict[str, int] = sweep.get("status_counts") or {}
            steps = sweep.get("progress") or {}
            progress.update(
                task,
                total=steps.get("steps_total"),
                completed=steps.get("steps_done") or 0,
                details=sweep_details(sweep),
            )
            finished = sum(count for status, count in counts.items() if status in TERMINAL_STATUSES)
            if counts and finished == sum(counts.values()):
                break
            time.sleep(SWEEP_POLL_SECONDS)
    listed = " ".join(f"{status} {count}" for status, count in counts.items() if count)
    console.print(f"Sweep {sweep_id} finished: {listed}.", highlight=False, markup=False)
    return EXIT_BY_STATUS["failed"] if counts.get("failed", 0) else 0
