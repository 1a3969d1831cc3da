"""How the CLI shows sweeps: a sweep's grid points aggregated over its seeds and how its jobs are executed, a
page of sweeps, and arms compared at their tuned best (a sweep's `tuned`, a comparison's `arms`).

The cells are those of `client.render`, and so is the rule that every string of an answer is made visible
before it is laid out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from client.render import MISSING, STATUS_STYLES, compact, number, tags_text, timestamp, visible_strings


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
