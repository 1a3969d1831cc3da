"""A grid point's learning curves over its seeds as one curve: at each step the mean over the seeds that
have a value there, with the mean's 95% Student t interval (the band the dashboard shades). Torch-free.

Seeds of one grid point share their evaluation schedule, so their points usually fall on the same steps and
are aggregated step by step. Where they do not (a series downsampled differently, runs stopped at their
target at different steps), the step range is cut into equal-width bins and each seed's values in a bin
are averaged before the seeds are. `n` says at each step how many seeds the figure is over: a seed that
diverged (no finite value) or already stopped is not among them, so a late mean is over the seeds still
running.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from core.results import finite_or_none
from core.statistics import Range, describe

SeedSeries = tuple[Sequence[int], Sequence[float | None]]  # one seed's (steps, values)


@dataclass(frozen=True)
class SeedBand:
    """Per step: how many seeds have a value, their mean, and the mean's 95% interval (None below two)."""

    steps: list[int]
    n: list[int]
    mean: list[float | None]
    ci95_low: list[float | None]
    ci95_high: list[float | None]


def seed_band(series: Sequence[SeedSeries], max_points: int, within: Range | None = None) -> SeedBand:
    """The seeds' series aggregated step by step (or bin by bin, see the module docstring), at most
    `max_points` steps; the band is cut to `within`, the range the metric can take."""
    schedules = {tuple(steps) for steps, _ in series}
    if len(schedules) == 1:
        (schedule,) = schedules
        if len(schedule) <= max_points:
            columns = [
                [finite_or_none(values[index]) for _, values in series] for index in range(len(schedule))
            ]
            return _band(list(schedule), columns, within)
    return _binned(series, max_points, within)


def _binned(series: Sequence[SeedSeries], max_points: int, within: Range | None) -> SeedBand:
    last_step = max((steps[-1] for steps, _ in series if len(steps)), default=0)
    width = max(1.0, (last_step + 1) / max_points)
    bin_steps: dict[int, int] = {}  # bin → the highest step seen in it (where its point is drawn)
    per_seed: list[dict[int, list[float]]] = []
    for steps, values in series:
        bins: dict[int, list[float]] = {}
        for step, value in zip(steps, values, strict=True):
            index = int(step / width)
            bin_steps[index] = max(bin_steps.get(index, step), step)
            number = finite_or_none(value)
            if number is not None:
                bins.setdefault(index, []).append(number)
        per_seed.append(bins)
    order = sorted(bin_steps)
    columns = [
        [math.fsum(bins[index]) / len(bins[index]) if index in bins else None for bins in per_seed]
        for index in order
    ]
    return _band([bin_steps[index] for index in order], columns, within)


def _band(steps: list[int], columns: Sequence[Sequence[float | None]], within: Range | None) -> SeedBand:
    band = SeedBand(steps, [], [], [], [])
    for column in columns:
        stat = describe(column, within)
        band.n.append(stat.n)
        band.mean.append(stat.mean)
        band.ci95_low.append(stat.ci95[0] if stat.ci95 else None)
        band.ci95_high.append(stat.ci95[1] if stat.ci95 else None)
    return band
