"""How the CLI shows the service's answers to a person: rich tables for jobs, a job, a comparison, a sweep.

Missing values (a job that never reached its target, a metric that was not finite) show as `—`.
Scripts should use `--json` instead of parsing these tables.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

MISSING = "—"
STATUS_STYLES = {
    "queued": "dim",
    "running": "cyan",
    "succeeded": "green",
    "failed": "bold red",
    "diverged": "magenta",
    "cancelled": "yellow",
}
SUMMARY_FIELDS = (
    ("final_val_accuracy", "final val accuracy"),
    ("best_val_accuracy", "best val accuracy"),
    ("final_train_loss", "final train loss"),
    ("final_val_loss", "final val loss"),
    ("steps_to_target", "steps to target"),
    ("seconds_to_target", "seconds to target"),
    ("diverged_at_step", "diverged at step"),
    ("steps_per_second", "steps per second"),
)


def number(value: object, digits: int = 3) -> str:
    """A float to `digits` significant places, an int as is, None as `—`."""
    if value is None:
        return MISSING
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}g}"


def status_text(status: object) -> Text:
    name = str(status) if status is not None else MISSING
    return Text(name, style=STATUS_STYLES.get(name, ""))


def timestamp(value: object) -> str:
    """An ISO timestamp from the service in this computer's time zone, to the second."""
    if not isinstance(value, str):
        return MISSING
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def compact(value: object) -> str:
    """A JSON value on one line, without the quotes a person does not need."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return ", ".join(f"{key}={compact(item)}" for key, item in value.items())
    return json.dumps(value, separators=(", ", ": "))


def progress_text(progress: object) -> str:
    if not isinstance(progress, Mapping) or progress.get("step") is None:
        return MISSING
    return f"{progress['step']:,}/{progress.get('steps') or 0:,}"


def job_name(job: Mapping[str, Any]) -> str:
    spec = job.get("spec")
    name = job.get("name") or (spec.get("name") if isinstance(spec, Mapping) else "")
    return str(name or "")


def jobs_table(items: list[dict[str, Any]]) -> Table:
    table = Table(show_edge=False, header_style="bold")
    table.add_column("id", no_wrap=True, min_width=32)
    table.add_column("name", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("progress", justify="right", no_wrap=True)
    table.add_column("val acc", justify="right", no_wrap=True)
    table.add_column("created", no_wrap=True)
    for job in items:
        summary = job.get("summary") or {}
        table.add_row(
            str(job.get("id")),
            job_name(job),
            status_text(job.get("status")),
            progress_text(job.get("progress")),
            number(summary.get("final_val_accuracy")),
            timestamp(job.get("created_at")),
        )
    return table


def job_details(job: dict[str, Any]) -> RenderableType:
    """Everything about one job: its lifecycle, its summary, and its spec."""
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column(overflow="fold")
    facts.add_row("id", str(job.get("id")))
    facts.add_row("name", job_name(job) or MISSING)
    facts.add_row("status", status_text(job.get("status")))
    if job.get("error"):
        facts.add_row("error", Text(str(job["error"]), style="red"))
    facts.add_row("progress", progress_text(job.get("progress")))
    facts.add_row("device", str(job.get("device") or MISSING))
    facts.add_row("attempts", number(job.get("attempts")))
    if job.get("sweep_id"):
        facts.add_row("sweep", str(job["sweep_id"]))
    for field in ("created_at", "started_at", "finished_at"):
        facts.add_row(field.removesuffix("_at"), timestamp(job.get(field)))
    summary = job.get("summary") or {}
    for key, label in SUMMARY_FIELDS:
        if key in summary:
            facts.add_row(label, number(summary[key], digits=4))
    spec = Table.grid(padding=(0, 2))
    spec.add_column(style="bold", no_wrap=True)
    spec.add_column(overflow="fold")
    for key, value in (job.get("spec") or {}).items():
        spec.add_row(key, compact(value))
    return Group(facts, Text("\nspec", style="bold underline"), spec)


def speedup_text(row: Mapping[str, Any]) -> str:
    speedup = row.get("speedup_vs_baseline")
    if speedup is None:
        return MISSING
    bound = "≥ " if row.get("speedup_is_lower_bound") else ""
    return f"{bound}{number(speedup)}×"


def compare_table(comparison: dict[str, Any]) -> Table:
    """The compare answer's rows: what differs from the baseline, how far each job got, and how fast."""
    baseline = comparison.get("baseline")
    title = f"{comparison.get('metric')} · target {number(comparison.get('target'))} · baseline {baseline}"
    table = Table(title=title, show_edge=False, header_style="bold")
    table.add_column("id", no_wrap=True, min_width=32)
    table.add_column("status", no_wrap=True)
    table.add_column("differs in", overflow="fold")
    table.add_column("eval every", justify="right")
    table.add_column("final", justify="right")
    table.add_column("best", justify="right")
    table.add_column("steps to target", justify="right")
    table.add_column("seconds to target", justify="right")
    table.add_column("speedup", justify="right", no_wrap=True)
    table.add_column("diverged at", justify="right")
    for row in comparison.get("jobs", []):
        identifier = str(row.get("id"))
        table.add_row(
            identifier + (" (baseline)" if identifier == baseline else ""),
            status_text(row.get("status")),
            compact(row.get("spec_diff")) if row.get("spec_diff") else MISSING,
            number(row.get("eval_every")),
            number(row.get("final")),
            number(row.get("best")),
            number(row.get("steps_to_target")),
            number(row.get("seconds_to_target")),
            speedup_text(row),
            number(row.get("diverged_at_step")),
        )
    return table


def aggregate_text(value: object) -> str:
    """A sweep cell: `mean ± std` for an aggregate over seeds, `k=v, …` for a grid point's values."""
    if isinstance(value, Mapping) and "mean" in value:
        if value.get("std") is None:
            return number(value.get("mean"))
        return f"{number(value.get('mean'))} ± {number(value.get('std'), digits=2)}"
    if isinstance(value, float | int) or value is None:
        return number(value)
    return compact(value)


def rows_table(rows: list[dict[str, Any]], title: str | None = None) -> Table:
    """A list of records as a table, one column per key, in the order the keys first appear."""
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    table = Table(title=title, show_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column.replace("_", " "), overflow="fold")
    for row in rows:
        table.add_row(*(aggregate_text(row.get(column)) for column in columns))
    return table
