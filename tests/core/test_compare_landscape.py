"""Landscape ratios of a comparison: geometric means and smoother fractions over shared probe steps."""

from __future__ import annotations

import math
import statistics

import pytest

from core.compare import LANDSCAPE_QUANTITIES, ComparedJob, Series, compare, landscape_ratios


def probes(values_by_step: dict[int, float | None]) -> dict[int, dict[str, float | None]]:
    """Every quantity of a probe step at the same value (enough to test the pairing and the maths)."""
    return {step: dict.fromkeys(LANDSCAPE_QUANTITIES, value) for step, value in values_by_step.items()}


def test_geometric_mean_ratio_and_smoother_fraction_over_the_shared_steps() -> None:
    baseline_values = {10: 2.0, 20: 4.0, 30: 8.0, 40: 1.0}
    factors = {10: 0.5, 20: 3.0, 30: 0.25}
    baseline = probes(dict(baseline_values))
    job = probes({step: baseline_values[step] * factor for step, factor in factors.items()})
    job[50] = dict.fromkeys(LANDSCAPE_QUANTITIES, 1.0)  # a step the baseline has no probe at
    ratios = landscape_ratios(job, baseline)
    assert set(ratios) == set(LANDSCAPE_QUANTITIES)
    for ratio in ratios.values():
        assert ratio.probes == 3
        assert ratio.geometric_mean_ratio == pytest.approx(statistics.geometric_mean(factors.values()))
        assert ratio.smoother_fraction == pytest.approx(2 / 3)  # lower at steps 10 and 30


def test_missing_and_non_positive_values_are_left_out() -> None:
    baseline = probes({10: 1.0, 20: 1.0, 30: 1.0, 40: 0.0})
    job = probes({10: 0.5, 20: None, 30: math.inf, 40: 0.5})
    ratio = landscape_ratios(job, baseline)["loss_range"]
    assert (ratio.probes, ratio.geometric_mean_ratio, ratio.smoother_fraction) == (1, 0.5, 1.0)
    nothing = landscape_ratios(probes({10: None}), baseline)["loss_range"]
    assert (nothing.probes, nothing.geometric_mean_ratio, nothing.smoother_fraction) == (0, None, None)


def compared(job_id: str, landscape: dict[int, dict[str, float | None]] | None) -> ComparedJob:
    spec = {"eval_every": 10, "steps": 30, "batch_norm": job_id == "bn"}
    return ComparedJob(
        id=job_id,
        name=job_id,
        status="succeeded",
        spec=spec,
        series=Series([10, 20, 30], [0.5, 0.6, 0.7]),
        steps_to_target=None,
        steps_run=30,
        landscape=landscape,
    )


def test_a_comparison_row_carries_ratios_only_where_both_jobs_were_probed() -> None:
    plain = compared("plain", probes({10: 4.0, 20: 2.0}))
    normalized = compared("bn", probes({10: 1.0, 20: 1.0}))
    unprobed = compared("unprobed", None)
    rows = {row.id: row for row in compare([plain, normalized, unprobed], "val_accuracy", "plain")}
    assert rows["bn"].landscape is not None and rows["plain"].landscape is not None
    bn_ratio, own_ratio = rows["bn"].landscape["beta_smoothness"], rows["plain"].landscape["beta_smoothness"]
    assert bn_ratio.geometric_mean_ratio == pytest.approx(math.sqrt(1 / 4 * 1 / 2))
    assert bn_ratio.smoother_fraction == 1.0
    assert (own_ratio.geometric_mean_ratio, own_ratio.smoother_fraction) == (1.0, 0.0)  # the reference
    assert rows["unprobed"].landscape is None
    without_baseline_probes = compare([unprobed, normalized], "val_accuracy", "unprobed")
    assert all(row.landscape is None for row in without_baseline_probes)
