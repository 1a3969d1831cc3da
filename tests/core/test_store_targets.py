"""The store finds where a series first met a target at full resolution, on both databases."""

from __future__ import annotations

import math

from core.results import MetricPoint
from core.store import Store
from tests.core.test_store import make_spec


def test_the_first_step_meeting_a_target_is_found_in_either_direction(store: Store) -> None:
    job = store.create_job(make_spec())
    accuracy = [0.1, 0.5, 0.93, 0.88, 0.95]
    loss = [2.3, math.nan, 0.4, 0.6, 0.2]
    store.write_metrics(
        job.id,
        [MetricPoint("val_accuracy", 10 * index, value) for index, value in enumerate(accuracy)]
        + [MetricPoint("val_loss", 10 * index, value) for index, value in enumerate(loss)],
    )
    assert store.first_step_meeting(job.id, "val_accuracy", 0.9, higher_is_better=True) == (20, 0.93)
    assert store.first_step_meeting(job.id, "val_accuracy", 0.95, higher_is_better=True) == (40, 0.95)
    assert store.first_step_meeting(job.id, "val_accuracy", 0.99, higher_is_better=True) is None
    # NaN is stored as NULL and never meets a target, not even "≤ 0.5".
    assert store.first_step_meeting(job.id, "val_loss", 0.5, higher_is_better=False) == (20, 0.4)
    assert store.first_step_meeting(job.id, "train_loss", 0.5, higher_is_better=False) is None


def test_the_crossing_is_exact_even_where_reads_are_downsampled(store: Store) -> None:
    job = store.create_job(make_spec())
    values = [0.5 + 0.4 * step / 10_000 for step in range(10_000)]
    values[6_543] = 0.99  # a lone early crossing inside a bucket
    store.write_metrics(
        job.id, [MetricPoint("val_accuracy", step, value) for step, value in enumerate(values)]
    )
    assert store.first_step_meeting(job.id, "val_accuracy", 0.95, higher_is_better=True) == (6_543, 0.99)
    assert store.first_step_meeting(job.id, "val_accuracy", 0.9, higher_is_better=True) == (6_543, 0.99)
    first_above = next(step for step, value in enumerate(values) if value >= 0.85)
    assert store.first_step_meeting(job.id, "val_accuracy", 0.85, True) == (first_above, values[first_above])
