"""How the CLI shows the service's answers to a person: rich tables for jobs, a job, a comparison, a sweep.

Missing values (a job that never reached its target, a metric that was not finite) show as `—`.
Scripts should use `--json` instead of parsing these tables.

What the service answers is data anyone with a write key may have stored, so it is printed as text: every
string of an answer has its control characters made visible (`visible_strings`, ESC as `\x1b`) before it is
laid out, and the console interprets no markup (`terminal()`), so `[bold red]` in a name is shown as typed.
"""

from __future__ import annotations

import json
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


def terminal() -> Console:
    """The console every human-readable answer is printed on: markup in a string is text, not style."""
    return Console(markup=False, emoji=False, highlight=False)


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


def statistic(value: object) -> str:
    """An aggregate over seeds, `mean [low, high]` (its 95% interval, on a line of its own to keep tables
    narrow), from the service's {n, mean, std, ci95, ci_method}; the mean alone without an interval (one
    seed)."""
    if not isinstance(value, Mapping) or value.get("mean") is None:
        return MISSING
    interval = value.get("ci95")
    if not interval:
        return number(value["mean"])
    return f"{number(value['mean'])}\n[{number(interval[0])}, {number(interval[1])}]"


def interval_text(value: object, suffix: str = "") -> str:
    """A bootstrap estimate or a paired difference, `value [low, high]`, from the service's answer."""
    if not isinstance(value, Mapping):
        return MISSING
    middle = value.get("value", value.get("mean"))
    if middle is None:
        return MISSING
    interval = value.get("ci95")
    bounds = f"\n[{number(interval[0])}, {number(interval[1])}]" if interval else ""
    return f"{number(middle)}{suffix}{bounds}"


def tuned_details(tuned: Mapping[str, Any]) -> RenderableType:
    """Arms compared at their tuned best (`tuned` of a sweep, `arms` of a comparison): each arm's chosen
    setting, its figures with 95% intervals, the speedup and accuracy difference against the baseline arm,
    and the verdicts the intervals allow."""
    tune = ", ".join(tuned.get("tune") or [])
    heading = Text(
        f"{tuned.get('arm')} arms{f', each at its best {tune}' if tune else ''}"
        f" · baseline {compact(tuned.get('baseline'))}"
        + (" · provisional: jobs still running" if tuned.get("provisional") else ""),
        style="bold",
    )
    table = Table(show_edge=False, header_style="bold")
    table.add_column(str(tuned.get("arm")), overflow="fold")
    table.add_column("chosen", overflow="fold", min_width=18)
    for header in ("seeds", "final", "steps to\ntarget", "speedup", "final −\nbaseline"):
        table.add_column(header, justify="right", no_wrap=True)
    verdicts: list[str] = []
    for arm in tuned.get("arms") or []:
        label = f"{tuned.get('arm')}={compact(arm.get('value'))}"
        speedup = arm.get("speedup_vs_baseline") or {}
        difference = arm.get("final_accuracy_vs_baseline") or {}
        bound = "≥ " if speedup.get("is_lower_bound") else ""
        by = "steps" if arm.get("chosen_by") == "steps_to_target" else "final"
        table.add_row(
            compact(arm.get("value")),
            f"{compact(arm.get('chosen')) or MISSING} (by {by}, of {arm.get('settings_tried')})",
            number(len(arm.get("seeds") or [])),
            statistic(arm.get("final_accuracy")),
            statistic(arm.get("steps_to_target")),
            bound + interval_text(speedup.get("estimate"), "×") if speedup else MISSING,
            interval_text(difference.get("difference")),
        )
        if speedup:
            verdicts.append(f"{label}, steps to target: {speedup['verdict']}")
        if difference:
            verdicts.append(f"{label}, final: {difference['verdict']}")
    return Group(
        heading,
        table,
        Text(str(tuned.get("criterion") or ""), style="dim"),
        *(Text(line) for line in verdicts),
    )


def status_counts_text(counts: Mapping[str, int]) -> Text:
    text = Text()
    for status, count in counts.items():
        if count:
            text.append(f"{status} {count}  ", style=STATUS_STYLES.get(status, ""))
    return text


def sweep_details(sweep: dict[str, Any]) -> RenderableType:
    """A sweep's status, one row per grid point aggregated over its seeds, and how its jobs are executed."""
    sweep = visible_strings(sweep)
    execution = sweep.get("execution") or {}
    heading = Text(f"sweep {sweep.get('id')} {sweep.get('name') or ''}".rstrip(), style="bold")
    facts = Text(
        f"{sweep.get('size')} jobs ({sweep.get('done')} done) · seeds {compact(sweep.get('seeds'))}"
        f" · executed {execution.get('used', MISSING)}"
    )
    table = Table(show_edge=False, header_style="bold")
    table.add_column("grid point", overflow="fold", min_width=24)
    table.add_column("done", justify="right", no_wrap=True)
    table.add_column("final accuracy", justify="right", no_wrap=True)
    table.add_column("best accuracy", justify="right", no_wrap=True)
    table.add_column("steps to target", justify="right", no_wrap=True)
    table.add_column("reached", justify="right")
    table.add_column("diverged", justify="right")
    for point in sweep.get("points") or []:
        table.add_row(
            compact(point.get("point")),
            f"{point.get('done')}/{len(point.get('job_ids') or [])}",
            statistic(point.get("final_accuracy")),
            statistic(point.get("best_accuracy")),
            statistic(point.get("steps_to_target")),
            number(point.get("reached_target")),
            number(point.get("diverged")),
        )
    return Group(
        heading,
        facts,
        status_counts_text(sweep.get("status_counts") or {}),
        table,
        Text("mean [95% confidence interval] over the seeds that have the figure (Student t)", style="dim"),
        Text(),
        execution_table(execution),
    )


def sweeps_table(items: list[dict[str, Any]]) -> Table:
    """One row per sweep of a `GET /v1/sweeps` page: its size, how it is executed and its jobs' statuses."""
    items = visible_strings(items)
    table = Table(show_edge=False, header_style="bold")
    table.add_column("id", no_wrap=True, min_width=32)
    table.add_column("name", overflow="fold")
    table.add_column("jobs", justify="right", no_wrap=True)
    table.add_column("executed", no_wrap=True)
    table.add_column("statuses")
    table.add_column("tags", overflow="fold")
    table.add_column("created", no_wrap=True)
    for sweep in items:
        execution = sweep.get("execution") or {}
        table.add_row(
            str(sweep.get("id")),
            str(sweep.get("name") or ""),
            number(sweep.get("size")),
            str(execution.get("used", MISSING)),
            status_counts_text(sweep.get("status_counts") or {}),
            tags_text(sweep),
            timestamp(sweep.get("created_at")),
        )
    return table


def execution_table(execution: Mapping[str, Any]) -> Table:
    """One row per fused group of a sweep (one task trains its jobs together), then one for the jobs that
    run as a task each, with their jobs counted by status."""
    table = Table(show_edge=False, header_style="bold")
    table.add_column("executed", overflow="fold")
    table.add_column("jobs", justify="right", no_wrap=True)
    table.add_column("statuses")
    for group in execution.get("fused_groups") or []:
        table.add_row(
            f"fused group {group.get('id')}",
            number(group.get("size")),
            status_counts_text(group.get("status_counts") or {}),
        )
    separate = execution.get("separate_job_ids") or []
    if separate:
        table.add_row(
            "separate (a task each)",
            number(len(separate)),
            status_counts_text(execution.get("separate_status_counts") or {}),
        )
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
