"""Comparison maths: what differs between specs, the figures read off a series, speedups, ordering, and a
downsampler that keeps the shape and the points a user looks for."""

from __future__ import annotations

import math
import random
from decimal import Decimal
from typing import Any

import pytest

from core.compare import (
    ComparedJob,
    Series,
    Speedup,
    best_value,
    compare,
    comparison_order_key,
    downsample,
    final_value,
    first_non_finite_step,
    flatten_spec,
    missing_last,
    seconds_to_target,
    spec_diff,
    speedup_vs_baseline,
    steps_to_target,
)
from core.results import finite_or_none
from core.spec import JobSpec

PAPER_SPEC: dict[str, Any] = {
    "architecture": {"kind": "mlp", "hidden": [100, 100, 100], "activation": "sigmoid"},
    "batch_norm": True,
    "learning_rate": 0.1,
    "dropout": 0.0,
}


def stored_spec(**changes: Any) -> dict[str, Any]:
    """A spec as the store keeps it: validated, every default filled in, as JSON."""
    return JobSpec.model_validate({**PAPER_SPEC, **changes}).model_dump(mode="json")


# --- spec_diff -------------------------------------------------------------------------------------


def test_spec_diff_reports_only_the_fields_that_differ_dotted_into_the_architecture() -> None:
    specs = {
        "a": stored_spec(batch_norm=False, name="plain"),
        "b": stored_spec(
            batch_norm=True,
            name="with bn",
            architecture={"kind": "mlp", "hidden": [100, 100, 100], "activation": "relu"},
        ),
    }
    diff = spec_diff(specs)
    assert diff == {
        "a": {"architecture.activation": "sigmoid", "batch_norm": False},
        "b": {"architecture.activation": "relu", "batch_norm": True},
    }


def test_spec_diff_of_one_job_or_identical_jobs_is_empty() -> None:
    assert spec_diff({"a": stored_spec()}) == {"a": {}}
    assert spec_diff({"a": stored_spec(), "b": stored_spec(name="same run, other label")}) == {
        "a": {},
        "b": {},
    }


def test_spec_diff_treats_a_width_list_as_one_value_and_missing_fields_as_none() -> None:
    mlp = stored_spec(architecture={"kind": "mlp", "hidden": [100, 100]})
    deeper = stored_spec(architecture={"kind": "mlp", "hidden": [100, 100, 100]})
    cnn = stored_spec(architecture={"kind": "cnn", "channels": [8]})
    diff = spec_diff({"mlp": mlp, "deeper": deeper, "cnn": cnn})
    assert diff["mlp"]["architecture.hidden"] == [100, 100]
    assert diff["deeper"]["architecture.hidden"] == [100, 100, 100]
    assert diff["cnn"]["architecture.hidden"] is None
    assert diff["cnn"]["architecture.channels"] == [8]
    assert diff["mlp"]["architecture.kind"] == "mlp"
    assert "learning_rate" not in diff["mlp"]


def test_flatten_spec_dots_nested_fields() -> None:
    flat = flatten_spec(stored_spec())
    assert flat["architecture.activation"] == "sigmoid"
    assert "architecture" not in flat


# --- figures read off a series ----------------------------------------------------------------------

STEPS = [0, 10, 20, 30, 40, 50]
ACCURACY = [0.1, 0.5, 0.89, 0.93, 0.91, 0.95]


def test_final_and_best_values_follow_the_metric_direction() -> None:
    assert final_value(ACCURACY) == ACCURACY[-1]
    assert best_value(ACCURACY, "val_accuracy") == max(ACCURACY)
    losses = [2.3, 1.0, 0.4, 0.6]
    assert best_value(losses, "train_loss") == min(losses)


def test_missing_and_non_finite_values_never_count_as_final_or_best() -> None:
    diverged_loss = [2.3, 1.5, math.nan, None]
    assert final_value(diverged_loss) is None
    assert best_value(diverged_loss, "train_loss") == 1.5
    assert best_value([math.inf, 0.2], "val_accuracy") == 0.2
    assert best_value([None, math.nan], "val_accuracy") is None
    assert final_value([]) is None


def test_a_decimal_counts_as_a_number_and_a_bool_or_a_non_finite_value_does_not() -> None:
    # One rule for what the store writes and what a comparison counts: PostgreSQL's numeric reads as Decimal.
    values = (Decimal("0.25"), 3, True, None, math.nan, -math.inf)
    assert [finite_or_none(value) for value in values] == [0.25, 3.0, None, None, None, None]


def test_steps_to_target_is_the_first_evaluated_step_at_or_above_the_target() -> None:
    first_index = next(index for index, value in enumerate(ACCURACY) if value >= 0.9)
    assert steps_to_target(STEPS, ACCURACY, 0.9, "val_accuracy") == STEPS[first_index]
    assert steps_to_target(STEPS, ACCURACY, 0.89, "val_accuracy") == 20  # meeting it exactly counts
    assert steps_to_target(STEPS, ACCURACY, 0.99, "val_accuracy") is None
    assert steps_to_target(STEPS, ACCURACY, None, "val_accuracy") is None


def test_steps_to_target_of_a_loss_counts_downwards_and_skips_nan() -> None:
    losses = [2.3, math.nan, 0.9, 0.4, 0.3]
    assert steps_to_target([0, 10, 20, 30, 40], losses, 0.5, "val_loss") == 30
    assert steps_to_target([0, 10], [math.nan, math.nan], 0.5, "val_loss") is None


def test_first_non_finite_step_finds_where_a_loss_blew_up() -> None:
    assert first_non_finite_step([0, 10, 20, 30], [2.3, 5.0, math.inf, math.nan]) == 20
    assert first_non_finite_step([0, 10], [2.3, 1.0]) is None


def test_seconds_to_target_uses_the_recorded_timing_for_the_same_crossing_else_the_throughput() -> None:
    assert seconds_to_target(70, 1000.0, recorded_steps_to_target=70, recorded_seconds_to_target=0.25) == 0.25
    assert (
        seconds_to_target(140, 1000.0, recorded_steps_to_target=70, recorded_seconds_to_target=0.25) == 0.14
    )
    assert seconds_to_target(None, 1000.0) is None
    assert seconds_to_target(70, None) is None
    assert seconds_to_target(70, math.nan) is None


# --- speedup --------------------------------------------------------------------------------------


def test_speedup_is_the_baselines_steps_over_this_jobs() -> None:
    assert speedup_vs_baseline(70, baseline_steps_to_target=700, baseline_steps_run=2000) == Speedup(10.0)


def test_speedup_is_a_lower_bound_from_the_budget_when_the_baseline_never_got_there() -> None:
    speedup = speedup_vs_baseline(70, baseline_steps_to_target=None, baseline_steps_run=2000)
    assert speedup.is_lower_bound
    assert speedup.value == pytest.approx(2000 / 70)


def test_no_speedup_when_this_job_never_got_there() -> None:
    assert speedup_vs_baseline(None, baseline_steps_to_target=70, baseline_steps_run=2000) == Speedup(None)
    assert speedup_vs_baseline(None, baseline_steps_to_target=None, baseline_steps_run=2000) == Speedup(None)


def test_target_met_before_any_update_gives_a_finite_speedup() -> None:
    speedup = speedup_vs_baseline(0, baseline_steps_to_target=50, baseline_steps_run=100)
    assert speedup.value is not None and math.isfinite(speedup.value)


# --- ordering -------------------------------------------------------------------------------------


def test_missing_values_never_sort_above_real_numbers() -> None:
    values = [0.5, None, math.nan, 0.9, -math.inf, 0.1]
    ranked = sorted(values, key=lambda value: missing_last(value, higher_is_better=True))
    assert ranked[:3] == [0.9, 0.5, 0.1]
    ascending = sorted(values, key=lambda value: missing_last(value, higher_is_better=False))
    assert ascending[:3] == [0.1, 0.5, 0.9]


def test_diverged_and_failed_jobs_sort_after_finished_ones_whatever_their_numbers() -> None:
    rows = [
        ("diverged-fast", "diverged", 10, 0.95),
        ("slow", "succeeded", 300, 0.91),
        ("failed", "failed", None, None),
        ("never", "succeeded", None, 0.6),
        ("fast", "succeeded", 70, 0.97),
        ("running", "running", 50, 0.92),
    ]
    ordered = sorted(
        rows,
        key=lambda row: comparison_order_key(row[1], row[2], row[3], "val_accuracy", rows.index(row)),
    )
    assert [row[0] for row in ordered] == ["fast", "slow", "never", "running", "diverged-fast", "failed"]


def test_equal_jobs_keep_the_order_they_were_asked_for() -> None:
    keys = [comparison_order_key("succeeded", 70, 0.9, "val_accuracy", position) for position in range(3)]
    assert sorted(keys) == keys


# --- downsampling -----------------------------------------------------------------------------------


def noisy_curve(length: int, seed: int) -> Series:
    generator = random.Random(seed)
    steps = [10 * index for index in range(length)]
    values: list[float | None] = [
        1 - math.exp(-index / (length / 5)) + generator.gauss(0, 0.02) for index in range(length)
    ]
    return Series(steps, values)


def test_short_series_come_back_unchanged() -> None:
    series = noisy_curve(50, seed=0)
    assert downsample(series, max_points=50) == series


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("max_points", [10, 101, 500])
def test_downsampled_series_fit_the_budget_and_keep_real_points_extremes_and_ends(
    seed: int, max_points: int
) -> None:
    series = noisy_curve(5000, seed)
    small = downsample(series, max_points)
    assert len(small) <= max_points
    assert small.steps == sorted(set(small.steps))
    original = dict(zip(series.steps, series.values, strict=True))
    assert all(original[step] == value for step, value in zip(small.steps, small.values, strict=True))
    assert small.steps[0] == series.steps[0] and small.steps[-1] == series.steps[-1]
    finite = [value for value in series.values if value is not None]
    assert max(finite) in small.values and min(finite) in small.values


def test_a_single_spike_survives_downsampling() -> None:
    series = noisy_curve(10_000, seed=1)
    spike_step = series.steps[7_321]
    series.values[7_321] = 5.0
    small = downsample(series, max_points=100)
    assert spike_step in small.steps


def test_the_target_crossing_and_the_divergence_point_are_always_kept() -> None:
    series = noisy_curve(10_000, seed=2)
    crossing = steps_to_target(series.steps, series.values, 0.8, "val_accuracy")
    assert crossing is not None
    series.values[9_000:] = [None] * 1_000
    small = downsample(series, max_points=20, keep_steps=[crossing])
    assert len(small) <= 20
    assert crossing in small.steps
    assert series.steps[9_000] in small.steps and small.values[small.steps.index(series.steps[9_000])] is None


def test_a_shared_step_span_aligns_the_buckets_of_series_of_different_lengths() -> None:
    long_run, short_run = noisy_curve(4_000, seed=3), noisy_curve(1_000, seed=4)
    span = (0, long_run.steps[-1])
    short_small = downsample(short_run, max_points=40, step_span=span)
    # With the long run's span, the short run fills only the first quarter of the buckets: fewer points.
    assert len(short_small) < len(downsample(short_run, max_points=40))
    assert short_small.steps[-1] == short_run.steps[-1]


def test_series_of_normalizes_non_finite_values_to_none() -> None:
    assert Series.of([0, 1, 2], [0.5, math.nan, math.inf]).values == [0.5, None, None]


# --- a whole comparison -----------------------------------------------------------------------------


def compared(
    job_id: str,
    status: str,
    values: list[float | None],
    eval_every: int = 10,
    steps_run: int | None = None,
    **spec_changes: Any,
) -> ComparedJob:
    spec = stored_spec(eval_every=eval_every, steps=2000, **spec_changes)
    steps = [eval_every * index for index in range(len(values))]
    return ComparedJob(
        id=job_id,
        name=job_id,
        status=status,
        spec=spec,
        series=Series.of(steps, values),
        steps_to_target=steps_to_target(steps, values, 0.9, "val_accuracy"),
        steps_run=steps_run if steps_run is not None else spec["steps"],
        steps_per_second=1000.0,
    )


def test_a_comparison_fills_every_field_and_flags_the_lower_bound() -> None:
    plain = compared("plain", "succeeded", [0.1, 0.4, 0.6, 0.62], batch_norm=False)
    normalized = compared("bn", "succeeded", [0.1, 0.7, 0.85, 0.93, 0.95], batch_norm=True)
    rows = {row.id: row for row in compare([plain, normalized], "val_accuracy", baseline_id="plain")}
    bn = rows["bn"]
    assert bn.spec_diff == {"batch_norm": True} and rows["plain"].spec_diff == {"batch_norm": False}
    assert (bn.final, bn.best, bn.steps_to_target, bn.eval_every, bn.steps) == (0.95, 0.95, 30, 10, 2000)
    assert bn.seconds_to_target == pytest.approx(30 / 1000.0)
    assert bn.speedup_is_lower_bound and bn.speedup_vs_baseline == pytest.approx(2000 / 30)
    assert rows["plain"].speedup_vs_baseline == 1.0 and not rows["plain"].speedup_is_lower_bound
    assert rows["plain"].steps_to_target is None and rows["plain"].seconds_to_target is None


def test_a_baseline_stopped_early_bounds_the_speedup_by_the_steps_it_ran() -> None:
    cancelled = compared("cancelled", "cancelled", [0.1, 0.3], steps_run=400, batch_norm=False)
    normalized = compared("bn", "succeeded", [0.1, 0.95], batch_norm=True)
    rows = {row.id: row for row in compare([cancelled, normalized], "val_accuracy", "cancelled")}
    assert rows["bn"].speedup_vs_baseline == pytest.approx(400 / 10) and rows["bn"].speedup_is_lower_bound


def test_a_comparison_orders_diverged_jobs_last_and_keeps_nan_out() -> None:
    diverged = compared("diverged", "diverged", [0.1, 0.95, math.nan], learning_rate=10.0)
    slow = compared("slow", "succeeded", [0.1, 0.5, 0.91], learning_rate=0.01)
    fast = compared("fast", "succeeded", [0.1, 0.92], learning_rate=0.1)
    rows = compare([diverged, slow, fast], "val_accuracy", baseline_id="slow")
    assert [row.id for row in rows] == ["fast", "slow", "diverged"]
    assert rows[-1].final is None and rows[-1].best == 0.95
    assert rows[0].speedup_vs_baseline == pytest.approx(20 / 10) and not rows[0].speedup_is_lower_bound


def test_spec_diff_names_the_normalization_only_where_batch_norm_does_not_say_it() -> None:
    specs = {
        "bn": stored_spec(batch_norm=True),
        "layer": stored_spec(batch_norm=False, normalization="layer"),
        "none": stored_spec(batch_norm=False),
    }
    assert spec_diff(specs) == {
        "bn": {"batch_norm": True, "normalization": "batch"},
        "layer": {"batch_norm": False, "normalization": "layer"},
        "none": {"batch_norm": False, "normalization": "none"},
    }
