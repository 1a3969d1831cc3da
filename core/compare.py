"""Comparison maths for runs put side by side: spec differences, final/best values, steps and seconds to a
target, speedup against a baseline, ordering, and a shape-keeping downsampler. Pure and torch-free.

Conventions:
- a series is two parallel sequences, `steps` (ascending optimizer steps) and `values`, where a value that
  is None or not finite (NaN, ±inf: the store keeps them as NULL) means "no number here";
- metrics whose name ends in `loss` improve downwards, every other metric (accuracies) upwards, so "best"
  and "reached the target" read the same for `val_loss` ≤ 0.2 as for `val_accuracy` ≥ 0.9;
- steps to target are resolved only to the series' own evaluation interval: the first evaluated step at
  which the target was met, never an interpolation between evaluations;
- loss-landscape quantities (Santurkar et al. 2018) are smoother when lower; a job's are compared with the
  baseline's probe step by probe step (see `landscape_ratios`);
- the gradient-based ICS of each hidden layer is summarised per job, not against the baseline
  (`core.gradient_ics`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.gradient_ics import LayerICS
from core.results import finite_or_none

SeriesValue = float | None

# Fields that label a run rather than change what it trains: never reported as a difference.
LABEL_FIELDS = frozenset({"name"})

# How a status ranks in a comparison: finished runs first, then runs still going, then runs that stopped
# early (cancelled), then runs that blew up (diverged) or never produced a result (failed).
STATUS_RANK: Mapping[str, int] = {
    "succeeded": 0,
    "running": 1,
    "queued": 2,
    "cancelled": 3,
    "diverged": 4,
    "failed": 5,
}
UNKNOWN_STATUS_RANK = len(STATUS_RANK)


def is_number(value: object) -> bool:
    """True for a finite int or float (bools are not numbers here)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def higher_is_better(metric: str) -> bool:
    """Losses improve downwards; accuracies (every other metric) upwards."""
    return not metric.endswith("loss")


# --- spec differences -------------------------------------------------------------------------------


def flatten_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A spec as one flat mapping, nested objects dotted (`architecture.activation`).

    Lists (hidden widths) stay whole values: `[100, 100]` and `[100, 100, 100]` are one difference.
    """
    flat: dict[str, Any] = {}
    for field, value in spec.items():
        if isinstance(value, Mapping):
            for inner_field, inner_value in flatten_spec(value).items():
                flat[f"{field}.{inner_field}"] = inner_value
        else:
            flat[field] = value
    return flat


def spec_diff(specs: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per job id, the dotted spec fields whose values are not the same across all the given jobs.

    A field that one job has and another lacks (an MLP's `hidden` against a CNN's `channels`) differs; the
    job that lacks it reports None. Label fields (`name`) are left out. One job alone differs in nothing.
    `normalization` is left out where it only repeats `batch_norm` (every job's is none or batch).
    """
    flat_specs = {job_id: flatten_spec(spec) for job_id, spec in specs.items()}
    left_out = set(LABEL_FIELDS)
    if all(flat.get("normalization", "none") in ("none", "batch") for flat in flat_specs.values()):
        left_out.add("normalization")
    all_fields = sorted({field for flat in flat_specs.values() for field in flat} - left_out)
    differing = [
        field
        for field in all_fields
        if len({_comparable(flat.get(field)) for flat in flat_specs.values()}) > 1
    ]
    return {job_id: {field: flat.get(field) for field in differing} for job_id, flat in flat_specs.items()}


def _comparable(value: Any) -> Any:
    """A hashable stand-in for a spec value (lists become tuples; 1 and 1.0 compare equal as in JSON)."""
    if isinstance(value, list):
        return tuple(_comparable(item) for item in value)
    return value


# --- values from one series -------------------------------------------------------------------------


def final_value(values: Sequence[SeriesValue]) -> float | None:
    """The last recorded value; None when it is not a finite number (a diverged run ends on NaN)."""
    return finite_or_none(values[-1]) if values else None


def best_value(values: Sequence[SeriesValue], metric: str) -> float | None:
    """The best finite value (highest accuracy, lowest loss); None when there is none."""
    finite = [number for value in values if (number := finite_or_none(value)) is not None]
    if not finite:
        return None
    return max(finite) if higher_is_better(metric) else min(finite)


def meets_target(value: SeriesValue, target: float, metric: str) -> bool:
    """Whether one value reaches the target in the metric's direction (never for a missing value)."""
    number = finite_or_none(value)
    if number is None:
        return False
    return number >= target if higher_is_better(metric) else number <= target


def target_crossing_index(values: Sequence[SeriesValue], target: float | None, metric: str) -> int | None:
    """Index of the first value that meets the target, or None (also when there is no target)."""
    if target is None:
        return None
    return next((index for index, value in enumerate(values) if meets_target(value, target, metric)), None)


def steps_to_target(
    steps: Sequence[int], values: Sequence[SeriesValue], target: float | None, metric: str
) -> int | None:
    """The first evaluated step at which the metric met the target; None when it never did."""
    index = target_crossing_index(values, target, metric)
    return None if index is None else int(steps[index])


def first_non_finite_step(steps: Sequence[int], values: Sequence[SeriesValue]) -> int | None:
    """The first step whose value is missing or not finite: where a loss series shows divergence."""
    return next(
        (int(step) for step, value in zip(steps, values, strict=True) if finite_or_none(value) is None), None
    )


def seconds_to_target(
    steps_to_target: int | None,
    steps_per_second: float | None,
    recorded_steps_to_target: int | None = None,
    recorded_seconds_to_target: float | None = None,
) -> float | None:
    """Wall-clock seconds until the target was met.

    The training core times its own target (`recorded_*`, from the job's summary); when the comparison asks
    about that same crossing step that timing is exact. Any other crossing (another metric or target) is
    estimated from the job's average throughput: steps ÷ steps per second.
    """
    if steps_to_target is None:
        return None
    if recorded_steps_to_target == steps_to_target and recorded_seconds_to_target is not None:
        return finite_or_none(recorded_seconds_to_target)
    throughput = finite_or_none(steps_per_second)
    if throughput is None or throughput <= 0:
        return None
    return steps_to_target / throughput


# --- speedup --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Speedup:
    """Baseline's steps to target ÷ this job's; `is_lower_bound` when the baseline never got there."""

    value: float | None
    is_lower_bound: bool = False


def speedup_vs_baseline(
    steps_to_target: int | None,
    baseline_steps_to_target: int | None,
    baseline_steps_run: int,
) -> Speedup:
    """How many times fewer steps this job needed than the baseline to reach the target.

    - this job never got there: no speedup (None);
    - the baseline got there: baseline steps ÷ this job's steps;
    - the baseline never got there in the `baseline_steps_run` steps it trained (its whole step budget for
      a finished run): it would have needed more than that, so budget ÷ this job's steps is a lower bound.
    A job that met the target at step 0 (before any update) counts as one step, so the ratio stays finite.
    """
    if steps_to_target is None:
        return Speedup(None)
    denominator = max(steps_to_target, 1)
    if baseline_steps_to_target is not None:
        return Speedup(max(baseline_steps_to_target, 1) / denominator)
    return Speedup(max(baseline_steps_run, 1) / denominator, is_lower_bound=True)


# --- ordering -------------------------------------------------------------------------------------


def missing_last(value: float | None, higher_is_better: bool) -> tuple[int, float]:
    """A sort key ordering the better numbers first and None/NaN after every real number."""
    number = finite_or_none(value)
    if number is None:
        return (1, 0.0)
    return (0, -number if higher_is_better else number)


def comparison_order_key(
    status: str,
    steps_to_target: int | None,
    final: float | None,
    metric: str,
    position: int,
) -> tuple[Any, ...]:
    """Sort key of a compared job: by status (finished before running, diverged and failed last), then
    fewest steps to target, then best final value, then the order the jobs were asked for."""
    return (
        STATUS_RANK.get(status, UNKNOWN_STATUS_RANK),
        missing_last(None if steps_to_target is None else float(steps_to_target), higher_is_better=False),
        missing_last(final, higher_is_better(metric)),
        position,
    )


# --- downsampling -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """One metric of one job: steps ascending, values None where there is no finite number."""

    steps: list[int]
    values: list[float | None]

    @classmethod
    def of(cls, steps: Iterable[int], values: Iterable[SeriesValue]) -> Series:
        return cls([int(step) for step in steps], [finite_or_none(value) for value in values])

    def __len__(self) -> int:
        return len(self.steps)


def downsample(
    series: Series,
    max_points: int,
    keep_steps: Iterable[int] = (),
    step_span: tuple[int, int] | None = None,
) -> Series:
    """At most `max_points` points that keep the series' shape: min/max buckets.

    The step range is cut into equal-width buckets and each bucket keeps its lowest and highest value, so
    spikes and dips survive. Always kept, whatever the budget: the first and last points, the first missing
    value (where a run diverged) and every step in `keep_steps` that the series has (pass the target
    crossing). `step_span` sets the buckets' range; giving every series of a comparison the same span
    aligns their buckets on the same steps. A budget smaller than the always-kept points returns just them.
    """
    if len(series) <= max_points:
        return series
    steps, values = series.steps, series.values
    index_of_step = {step: index for index, step in enumerate(steps)}
    kept = {0, len(steps) - 1}
    kept.update(index_of_step[step] for step in keep_steps if step in index_of_step)
    first_missing = next((index for index, value in enumerate(values) if value is None), None)
    if first_missing is not None:
        kept.add(first_missing)

    bucket_count = max(0, (max_points - len(kept)) // 2)
    if bucket_count:
        low, high = step_span if step_span is not None else (steps[0], steps[-1])
        width = max(high - low, 1) / bucket_count
        lowest: dict[int, tuple[float, int]] = {}  # bucket → (value, index) of its minimum
        highest: dict[int, tuple[float, int]] = {}
        for index, (step, value) in enumerate(zip(steps, values, strict=True)):
            if value is None:
                continue
            bucket = min(max(int((step - low) / width), 0), bucket_count - 1)
            if bucket not in lowest or value < lowest[bucket][0]:
                lowest[bucket] = (value, index)
            if bucket not in highest or value > highest[bucket][0]:
                highest[bucket] = (value, index)
        kept.update(index for _, index in lowest.values())
        kept.update(index for _, index in highest.values())

    chosen = sorted(kept)
    return Series([steps[index] for index in chosen], [values[index] for index in chosen])


# --- loss landscape ---------------------------------------------------------------------------------

# The probe figures that measure smoothness (lower is smoother); ‖g‖ itself is no measure of it.
LANDSCAPE_QUANTITIES = (
    "loss_range",
    "gradient_predictiveness",
    "beta_smoothness",
    "relative_gradient_change",
)
LandscapeProbes = Mapping[int, Mapping[str, SeriesValue]]  # probe step → quantity → value


@dataclass(frozen=True)
class LandscapeRatio:
    """One landscape quantity of a job against the baseline's, over the probe steps where both have a
    finite positive value (`probes` of them; the figures are None when there are none)."""

    geometric_mean_ratio: float | None
    smoother_fraction: float | None
    probes: int


def landscape_ratios(probes: LandscapeProbes, baseline: LandscapeProbes) -> dict[str, LandscapeRatio]:
    """Per smoothness quantity, how the job's landscape compares with the baseline's, step by step.

    `geometric_mean_ratio` is exp(mean(log(job / baseline))) over the paired probe steps: below 1 the job
    is smoother on the whole, and a ratio of 0.5 means "half as rough" whatever the quantity's scale (an
    arithmetic mean of ratios would let one rough step outweigh many smooth ones). `smoother_fraction` is
    the share of those steps where the job's value is strictly lower. Steps are paired by number, so jobs
    probed at different intervals compare on the steps they share; a step where either value is missing
    (not finite) or not positive is left out. The baseline against itself reads 1.0 and 0.0.
    """
    shared_steps = sorted(probes.keys() & baseline.keys())
    ratios = {}
    for quantity in LANDSCAPE_QUANTITIES:
        pairs = [
            (mine, theirs)
            for step in shared_steps
            if (mine := finite_or_none(probes[step].get(quantity))) is not None
            and (theirs := finite_or_none(baseline[step].get(quantity))) is not None
            and mine > 0
            and theirs > 0
        ]
        if not pairs:
            ratios[quantity] = LandscapeRatio(None, None, 0)
            continue
        mean_log_ratio = sum(math.log(mine / theirs) for mine, theirs in pairs) / len(pairs)
        smoother = sum(1 for mine, theirs in pairs if mine < theirs)
        ratios[quantity] = LandscapeRatio(math.exp(mean_log_ratio), smoother / len(pairs), len(pairs))
    return ratios


# --- a whole comparison -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ComparedJob:
    """What a comparison needs of one job: its record, its series of the compared metric, and where that
    series first met the target at full resolution (the series itself may be downsampled)."""

    id: str
    name: str
    status: str
    spec: Mapping[str, Any]
    series: Series
    steps_to_target: int | None
    steps_run: int
    steps_per_second: float | None = None
    recorded_steps_to_target: int | None = None
    recorded_seconds_to_target: float | None = None
    diverged_at_step: int | None = None
    landscape: LandscapeProbes | None = None  # None: the job was run without landscape probes
    ics: list[LayerICS] | None = None  # None: the job was run without telemetry


@dataclass(frozen=True)
class ComparisonRow:
    id: str
    name: str
    status: str
    spec_diff: dict[str, Any]
    eval_every: int
    steps: int
    final: float | None
    best: float | None
    steps_to_target: int | None
    seconds_to_target: float | None
    speedup_vs_baseline: float | None
    speedup_is_lower_bound: bool
    diverged_at_step: int | None
    landscape: dict[str, LandscapeRatio] | None = None
    ics: list[LayerICS] | None = None


def compare(jobs: Sequence[ComparedJob], metric: str, baseline_id: str) -> list[ComparisonRow]:
    """One row per job, ordered for reading (see `comparison_order_key`).

    The baseline's own row has speedup 1.0 whether or not it met the target: it is the reference (as in
    DESIGN.md's example, where a baseline that never got there still reads 1.0).

    The baseline's step budget for a lower bound is the steps it actually ran (`steps_run`): a finished
    run's whole budget, or fewer for a run that was cancelled or is still going.

    Where both the job and the baseline have landscape probes, the row carries `landscape_ratios` of the
    job's against the baseline's; otherwise its `landscape` is None. A job's `ics` (its gradient-based ICS
    per layer) is carried over as it is.
    """
    baseline = next(job for job in jobs if job.id == baseline_id)
    differences = spec_diff({job.id: job.spec for job in jobs})
    rows = []
    for job in jobs:
        if job.id == baseline_id:
            speedup = Speedup(1.0)
        else:
            speedup = speedup_vs_baseline(job.steps_to_target, baseline.steps_to_target, baseline.steps_run)
        rows.append(
            ComparisonRow(
                id=job.id,
                name=job.name,
                status=job.status,
                spec_diff=differences[job.id],
                eval_every=int(job.spec["eval_every"]),
                steps=int(job.spec["steps"]),
                final=final_value(job.series.values),
                best=best_value(job.series.values, metric),
                steps_to_target=job.steps_to_target,
                seconds_to_target=seconds_to_target(
                    job.steps_to_target,
                    job.steps_per_second,
                    job.recorded_steps_to_target,
                    job.recorded_seconds_to_target,
                ),
                speedup_vs_baseline=speedup.value,
                speedup_is_lower_bound=speedup.is_lower_bound,
                diverged_at_step=job.diverged_at_step,
                landscape=(
                    landscape_ratios(job.landscape, baseline.landscape)
                    if job.landscape and baseline.landscape
                    else None
                ),
                ics=job.ics,
            )
        )
    positions = {job.id: position for position, job in enumerate(jobs)}
    return sorted(
        rows,
        key=lambda row: comparison_order_key(
            row.status, row.steps_to_target, row.final, metric, positions[row.id]
        ),
    )
