"""A sweep's job outcomes aggregated per grid point over seeds (n, mean, sample std, 95% t interval of
final and best accuracy and of steps to target) and laid out on a heatmap of two grid axes. Torch-free.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.statistics import ACCURACY_RANGE, NON_NEGATIVE, Stat, describe
from core.sweeps.expansion import value_at

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "diverged", "cancelled")
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "diverged", "cancelled"})


@dataclass(frozen=True)
class JobOutcome:
    """What aggregation needs of one job of a sweep (built from the store's job view)."""

    job_id: str
    status: str
    spec: Mapping[str, Any]
    final_accuracy: float | None = None
    best_accuracy: float | None = None
    steps_to_target: int | None = None
    steps_run: int | None = None  # where it stopped: a lower bound on steps to target it never reached

    @property
    def counted_final_accuracy(self) -> float | None:
        """The final accuracy that aggregates count: none for a diverged job, whose last evaluation before
        the loss went non-finite is where training broke down, not where it ended."""
        return None if self.status == "diverged" else self.final_accuracy


@dataclass(frozen=True)
class GridPointSummary:
    """One grid point aggregated over its seeds."""

    point: dict[str, Any]
    job_ids: list[str]
    seeds: list[int]
    status_counts: dict[str, int]
    done: int
    diverged: int
    reached_target: int
    final_accuracy: Stat
    best_accuracy: Stat
    steps_to_target: Stat


def status_counts(statuses: Iterable[str]) -> dict[str, int]:
    """How many jobs are in each status (every status listed, zero included)."""
    counts = dict.fromkeys(JOB_STATUSES, 0)
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return counts


def aggregate(outcomes: Sequence[JobOutcome], axes: Sequence[str]) -> list[GridPointSummary]:
    """The jobs grouped by their values on `axes` (read from each job's spec), aggregated over seeds.

    Groups come in the order their first job appears (pass jobs in creation order to get grid order).
    Means are over the jobs that have the figure: a diverged job (which has no final accuracy, see
    `JobOutcome.counted_final_accuracy`), or a job that never met its target, is counted (`diverged`,
    `reached_target`) rather than averaged, as a zero or as the accuracy it had before it broke down.
    """
    groups: dict[tuple[str, ...], list[JobOutcome]] = {}
    for outcome in outcomes:
        key = tuple(json.dumps(value_at(outcome.spec, axis), sort_keys=True) for axis in axes)
        groups.setdefault(key, []).append(outcome)
    summaries = []
    for members in groups.values():
        statuses = [member.status for member in members]
        summaries.append(
            GridPointSummary(
                point={axis: value_at(members[0].spec, axis) for axis in axes},
                job_ids=[member.job_id for member in members],
                seeds=[int(member.spec.get("seed", 0)) for member in members],
                status_counts=status_counts(statuses),
                done=sum(status in TERMINAL_STATUSES for status in statuses),
                diverged=statuses.count("diverged"),
                reached_target=sum(member.steps_to_target is not None for member in members),
                final_accuracy=describe(
                    (member.counted_final_accuracy for member in members), ACCURACY_RANGE
                ),
                best_accuracy=describe((member.best_accuracy for member in members), ACCURACY_RANGE),
                steps_to_target=describe((member.steps_to_target for member in members), NON_NEGATIVE),
            )
        )
    return summaries


@dataclass(frozen=True)
class SweepHeatmap:
    """Mean final accuracy over two grid axes (rows: `y_axis`, columns: `x_axis`); None where no job has
    a final accuracy. `y_axis` is None for a one-axis sweep (a single row)."""

    x_axis: str
    y_axis: str | None
    x_values: list[Any]
    y_values: list[Any]
    mean_final_accuracy: list[list[float | None]]
    diverged: list[list[int]]
    jobs: list[list[int]]


def heatmap(outcomes: Sequence[JobOutcome], x_axis: str, y_axis: str | None) -> SweepHeatmap:
    """The sweep's jobs on an x × y grid; jobs differing on other axes share a cell (their mean)."""
    axes = [x_axis] if y_axis is None else [x_axis, y_axis]
    summaries = aggregate(outcomes, axes)
    x_values = _distinct(summary.point[x_axis] for summary in summaries)
    y_values = [None] if y_axis is None else _distinct(summary.point[y_axis] for summary in summaries)
    by_cell = {
        (_key(summary.point[x_axis]), _key(summary.point[y_axis] if y_axis else None)): summary
        for summary in summaries
    }
    means: list[list[float | None]] = []
    diverged: list[list[int]] = []
    jobs: list[list[int]] = []
    for y_value in y_values:
        row = [by_cell.get((_key(x_value), _key(y_value))) for x_value in x_values]
        means.append([cell.final_accuracy.mean if cell else None for cell in row])
        diverged.append([cell.diverged if cell else 0 for cell in row])
        jobs.append([len(cell.job_ids) if cell else 0 for cell in row])
    return SweepHeatmap(x_axis, y_axis, x_values, y_values, means, diverged, jobs)


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _distinct(values: Iterable[Any]) -> list[Any]:
    """Values in first-seen order, numbers sorted ascending (a learning-rate axis reads left to right)."""
    seen: dict[str, Any] = {}
    for value in values:
        seen.setdefault(_key(value), value)
    distinct = list(seen.values())
    if all(isinstance(value, int | float) and not isinstance(value, bool) for value in distinct):
        return sorted(distinct)
    return distinct
