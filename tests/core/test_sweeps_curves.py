"""A grid point's curves over seeds: the mean and its 95% t interval step by step, over the seeds that
have a value there."""

from __future__ import annotations

import math
import statistics

import pytest

from core.sweeps.curves import seed_band

T_975_DF_2 = 4.3026527


def test_seeds_on_one_schedule_aggregate_step_by_step() -> None:
    seeds = [([0, 10, 20], [0.1, 0.5, 0.9]), ([0, 10, 20], [0.2, 0.6, 0.95]), ([0, 10, 20], [0.1, 0.7, None])]
    band = seed_band(seeds, max_points=100)
    assert band.steps == [0, 10, 20]
    assert band.n == [3, 3, 2]  # the third seed has no finite value at step 20
    assert band.mean[1] == pytest.approx(0.6)
    half_width = T_975_DF_2 * statistics.stdev([0.5, 0.6, 0.7]) / math.sqrt(3)
    assert (band.ci95_low[1], band.ci95_high[1]) == pytest.approx((0.6 - half_width, 0.6 + half_width))


def test_a_band_is_cut_to_the_range_of_its_metric() -> None:
    """Accuracies near 1 over two seeds: the band stops at 1 and at 0 instead of claiming what no
    accuracy can be."""
    seeds = [([0, 10], [0.1, 0.99]), ([0, 10], [0.5, 0.95])]
    whole = seed_band(seeds, max_points=100)
    assert whole.ci95_high[1] is not None and whole.ci95_high[1] > 1.0
    band = seed_band(seeds, max_points=100, within=(0.0, 1.0))
    assert whole.ci95_low[0] is not None and whole.ci95_low[0] < 0.0
    assert band.ci95_high == [1.0, 1.0]
    assert band.ci95_low == [0.0, whole.ci95_low[1]]
    assert band.mean == whole.mean


def test_one_seed_has_a_mean_but_no_band() -> None:
    band = seed_band([([0, 10], [0.1, 0.4])], max_points=100)
    assert band.n == [1, 1] and band.mean == [0.1, 0.4]
    assert band.ci95_low == [None, None] and band.ci95_high == [None, None]


def test_seeds_that_stopped_at_different_steps_are_binned_and_counted() -> None:
    """One seed stopped at its target at step 30, the other ran to 60: late steps are over one seed."""
    seeds = [
        ([0, 10, 20, 30], [0.1, 0.5, 0.8, 0.9]),
        ([0, 10, 20, 30, 40, 50, 60], [0.1, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9]),
    ]
    band = seed_band(seeds, max_points=100)
    assert band.steps == [0, 10, 20, 30, 40, 50, 60]
    assert band.n == [2, 2, 2, 2, 1, 1, 1]
    assert band.mean[2] == pytest.approx(0.65) and band.mean[-1] == 0.9


def test_long_series_come_back_in_at_most_max_points_bins() -> None:
    steps = list(range(0, 1000, 2))
    band = seed_band([(steps, [0.5] * len(steps)), (steps, [0.7] * len(steps))], max_points=50)
    assert len(band.steps) <= 50 and band.steps[-1] == 998
    assert all(mean == pytest.approx(0.6) for mean in band.mean)
