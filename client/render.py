"""How the CLI shows the service's answers to a person: rich tables for jobs, a job, a comparison, datasets
(sweeps and arms compared at their tuned best in `client.render_sweeps`), and the cells they are made of.

Missing values (a job that never reached its target, a metric that was not finite) show as `—`.
Scripts should use `--json` instead of parsing these tables.

What the service answers is data anyone with a write key may have stored, so it is printed as text: every
string of an answer has its control characters made visible (`visible_strings`, ESC as `\x1b`) before it is
laid out, and the console interprets no markup (`terminal()`), so `[bold red]` in a name is shown as typed.
"""

from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rich.console import Console, Group, RenderableType
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


# Control characters (C0, DEL, C1), invisible format characters (bidi overrides, zero widths), line and
# paragraph separators, surrogates: each one could move the cursor, retitle the terminal or hide text.
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


# A file or a pipe has no width to fit: rather than cut every line at 80 characters (rich's default there),
# which silently drops a wide table's last columns, print as wide as the widest table needs.
PIPED_WIDTH = 240


def terminal() -> Console:
    """The console every human-readable answer is printed on: markup in a string is text, not style. Into
    a file or a pipe (no terminal, no COLUMNS) lines are not cut to 80 characters: tables keep all columns."""
    console = Console(markup=False, emoji=False, highlight=False)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console.width = PIPED_WIDTH
    return console


def visible(text: str) -> str:
    """`text` with every character that would act on a terminal or hide itself written as an escape."""
    if text.isprintable():
        return text
    return "".join(
        (f"\\x{ord(character):02x}" if ord(character) < 0x100 else f"\\u{ord(character):04x}")
        if unicodedata.category(character) in INVISIBLE_CATEGORIES
        else character
        for character in text
    )


def visible_strings(value: Any) -> Any:
    """A service answer with `visible` applied to every string in it (keys too)."""
    if isinstance(value, str):
        return visible(value)
    if isinstance(value, Mapping):
        return {visible_strings(key): visible_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [visible_strings(item) for item in value]
    return value


def number(value: object, digits: int = 3) -> str:
    """A float to `digits` significant places (a larger one to the unit: 1,070 rather than 1.07e+03), an int
    as is, None as `—`."""
    if value is None:
        return MISSING
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    formatted = f"{value:.{digits}g}"
    return f"{value:,.0f}" if "e+" in formatted else formatted


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
    items = visible_strings(items)
    table = Table(show_edge=False, header_style="bold")
    table.add_column("id", no_wrap=True, min_width=32)
    table.add_column("name", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("progress", justify="right", no_wrap=True)
    table.add_column("val acc", justify="right", no_wrap=True)
    table.add_column("tags", overflow="fold")
    table.add_column("created", no_wrap=True)
    for job in items:
        summary = job.get("summary") or {}
        table.add_row(
            str(job.get("id")),
            job_name(job),
            status_text(job.get("status")),
            progress_text(job.get("progress")),
            number(summary.get("final_val_accuracy")),
            tags_text(job),
            timestamp(job.get("created_at")),
        )
    return table


def tags_text(item: Mapping[str, Any]) -> str:
    """A job's or sweep's tags, and "(archived)" when it is."""
    words = [str(tag) for tag in item.get("tags") or []]
    return " ".join([*words, "(archived)"] if item.get("archived") else words)


def execution_text(execution: object) -> str:
    """How a job is trained, from its `execution`: in a fused group (its id and size) or as its own task."""
    if not isinstance(execution, Mapping) or execution.get("mode") != "fused":
        return "separate (a task of its own)"
    size = number(execution.get("group_size"))
    return f"fused group {execution.get('group_id')} ({size} jobs trained together)"


def normalization_text(spec: Mapping[str, Any]) -> str:
    """The layer before each hidden nonlinearity, in words: `none`, `batch`, `batch (bnlab's paper BN)`,
    `batch with noise: m ~ N(0, 0.5²), log s ~ N(0, 1²)`, `layer`, `group (4 groups)`. A spec stored
    before `normalization` existed says it with `batch_norm` alone."""
    kind = spec.get("normalization") or ("batch" if spec.get("batch_norm") else "none")
    if kind == "group":
        groups = spec.get("groups")
        return f"group ({groups} groups)" if groups else "group (per layer, up to 32 groups)"
    if kind != "batch":
        return str(kind)
    text = "batch (bnlab's paper BN)" if spec.get("bn_implementation") == "bnlab" else "batch"
    noise = spec.get("bn_noise")
    if isinstance(noise, Mapping):
        mean_std, scale_std = number(noise.get("mean_std")), number(noise.get("scale_std"))
        text += f" with noise: m ~ N(0, {mean_std}²), log s ~ N(0, {scale_std}²)"
    return text


def job_details(job: dict[str, Any]) -> RenderableType:
    """Everything about one job: its lifecycle, its summary, and its spec."""
    job = visible_strings(job)
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column(overflow="fold")
    facts.add_row("id", str(job.get("id")))
    facts.add_row("name", job_name(job) or MISSING)
    facts.add_row("status", status_text(job.get("status")))
    if job.get("waiting_for"):
        facts.add_row("waiting for", Text(str(job["waiting_for"]), style="yellow"))
    if job.get("error"):
        facts.add_row("error", Text(str(job["error"]), style="red"))
    facts.add_row("progress", progress_text(job.get("progress")))
    facts.add_row("device", str(job.get("device") or MISSING))
    facts.add_row("normalization", normalization_text(job.get("spec") or {}))
    facts.add_row("attempts", number(job.get("attempts")))
    if job.get("sweep_id"):
        facts.add_row("sweep", str(job["sweep_id"]))
    facts.add_row("execution", execution_text(job.get("execution")))
    if job.get("tags") or job.get("archived"):
        facts.add_row("tags", tags_text(job))
    if job.get("note"):
        facts.add_row("note", str(job["note"]))
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
    """The compare answer's rows: what differs from the baseline, how far each job got, and how fast.

    Two-line headers, a job column that may wrap, and a "diverged at" column only when a job diverged
    keep the table within a 110-column terminal.
    """
    comparison = visible_strings(comparison)
    baseline = comparison.get("baseline")
    rows = comparison.get("jobs", [])
    any_diverged = any(row.get("diverged_at_step") is not None for row in rows)
    title = f"{comparison.get('metric')} · target {number(comparison.get('target'))} · baseline {baseline}"
    table = Table(title=title, show_edge=False, header_style="bold")
    table.add_column("job", min_width=17)
    table.add_column("status", no_wrap=True)
    table.add_column("differs in", min_width=10, overflow="fold")
    for header in ("eval\nevery", "final", "best", "steps to\ntarget", "seconds\nto target", "speedup"):
        table.add_column(header, justify="right", no_wrap=True)
    if any_diverged:
        table.add_column("diverged\nat step", justify="right", no_wrap=True)
    for row in rows:
        identifier = str(row.get("id"))
        label = " ".join(part for part in (identifier[:8], row.get("name")) if part)
        cells: list[RenderableType] = [
            label + (" (baseline)" if identifier == baseline else ""),
            status_text(row.get("status")),
            compact(row.get("spec_diff")) if row.get("spec_diff") else MISSING,
            number(row.get("eval_every")),
            number(row.get("final")),
            number(row.get("best")),
            number(row.get("steps_to_target")),
            number(row.get("seconds_to_target")),
            speedup_text(row),
        ]
        if any_diverged:
            cells.append(number(row.get("diverged_at_step")))
        table.add_row(*cells)
    return table


def datasets_table(items: list[dict[str, Any]]) -> Table:
    """One row per uploaded dataset: its sizes, an example's shape, its classes and digest."""
    items = visible_strings(items)
    table = Table(show_edge=False, header_style="bold")
    table.add_column("name", overflow="fold")
    table.add_column("train", justify="right", no_wrap=True)
    table.add_column("val", justify="right", no_wrap=True)
    table.add_column("shape", no_wrap=True)
    table.add_column("classes", justify="right", no_wrap=True)
    table.add_column("sha256", no_wrap=True)
    table.add_column("created", no_wrap=True)
    for dataset in items:
        table.add_row(
            str(dataset.get("name")),
            number(dataset.get("train_size")),
            number(dataset.get("val_size")),
            "x".join(str(size) for size in dataset.get("input_shape") or []),
            number(dataset.get("num_classes")),
            str(dataset.get("sha256") or "")[:12],
            timestamp(dataset.get("created_at")),
        )
    return table
