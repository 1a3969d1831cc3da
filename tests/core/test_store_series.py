"""Metrics, telemetry and landscape probes through the store, on both databases: idempotent batched
upserts, downsampling in SQL, and non-finite values stored as NULL."""

from __future__ import annotations

import json
import math
import random

import pytest
import sqlalchemy as sa

from core.results import LandscapeRecord, MetricPoint, TelemetryRecord
from core.store import JobNotFound, LandscapeView, Store
from tests.core.test_store import make_spec

EVERYTHING = 10**6  # a max_points no test series reaches


def test_rewriting_a_batch_replaces_values_without_duplicates(store: Store) -> None:
    job = store.create_job(make_spec())
    store.write_metrics(job.id, [MetricPoint("train_loss", step, 1.0 / (step + 1)) for step in range(100)])
    # A redelivered job resumes at step 50 and rewrites from there, with (here: different) values.
    store.write_metrics(job.id, [MetricPoint("train_loss", step, -float(step)) for step in range(50, 120)])

    steps, values = store.read_metrics(job.id, ["train_loss"], EVERYTHING)["train_loss"]
    assert steps == list(range(120))
    assert values == [1.0 / (step + 1) for step in range(50)] + [-float(step) for step in range(50, 120)]


def test_within_a_batch_the_last_point_of_a_step_wins(store: Store) -> None:
    job = store.create_job(make_spec())
    store.write_metrics(job.id, [MetricPoint("val_accuracy", 10, 0.5), MetricPoint("val_accuracy", 10, 0.75)])
    assert store.read_metrics(job.id, None, EVERYTHING) == {"val_accuracy": ([10], [0.75])}


def test_series_are_kept_apart_by_job_and_name(store: Store) -> None:
    first, second = store.create_job(make_spec()), store.create_job(make_spec())
    store.write_metrics(first.id, [MetricPoint("train_loss", 0, 2.0), MetricPoint("val_loss", 0, 2.5)])
    store.write_metrics(second.id, [MetricPoint("train_loss", 0, 3.0)])

    assert store.read_metrics(first.id, None, EVERYTHING) == {
        "train_loss": ([0], [2.0]),
        "val_loss": ([0], [2.5]),
    }
    assert store.read_metrics(second.id, ["train_loss", "val_loss"], EVERYTHING) == {
        "train_loss": ([0], [3.0]),
        "val_loss": ([], []),
    }


def test_a_second_store_agrees_on_interned_names(migrated_database_url: str) -> None:
    writers = [Store(migrated_database_url), Store(migrated_database_url)]
    try:
        job = writers[0].create_job(make_spec())
        writers[1].write_metrics(job.id, [MetricPoint("val_loss", 1, 1.5)])
        writers[0].write_metrics(
            job.id, [MetricPoint("val_loss", 2, 1.25), MetricPoint("train_loss", 2, 1.0)]
        )
        assert writers[1].read_metrics(job.id, None, EVERYTHING) == {
            "train_loss": ([2], [1.0]),
            "val_loss": ([1, 2], [1.5, 1.25]),
        }
    finally:
        for writer in writers:
            writer.dispose()


def test_non_finite_values_are_stored_as_null(store: Store) -> None:
    job = store.create_job(make_spec())
    store.write_metrics(
        job.id,
        [
            MetricPoint("train_loss", 1, 0.5),
            MetricPoint("train_loss", 2, math.inf),
            MetricPoint("train_loss", 3, math.nan),
            MetricPoint("train_loss", 4, -math.inf),
        ],
    )
    assert store.read_metrics(job.id, None, EVERYTHING) == {
        "train_loss": ([1, 2, 3, 4], [0.5, None, None, None])
    }


def _reference_downsample(
    steps: list[int], values: list[float | None], max_points: int
) -> tuple[list[int], list[float | None]]:
    """The documented rule, in plain Python: max_points // 4 equal step buckets, each keeping its first,
    last, lowest and highest point (earliest step on ties; missing values never count as extremes)."""
    if len(steps) <= max_points:
        return steps, values
    buckets = max_points // 4
    first, last = steps[0], steps[-1]
    members: dict[int, list[int]] = {}
    for index, step in enumerate(steps):
        members.setdefault((step - first) * buckets // (last - first + 1), []).append(index)
    kept: set[int] = set()
    for indices in members.values():
        kept.update({indices[0], indices[-1]})
        finite = [index for index in indices if values[index] is not None]
        if finite:
            kept.add(min(finite, key=lambda index: (values[index], steps[index])))
            kept.add(min(finite, key=lambda index: (-values[index], steps[index])))  # type: ignore[operator]
        else:
            kept.add(indices[0])
    ordered = sorted(kept)
    return [steps[index] for index in ordered], [values[index] for index in ordered]


@pytest.mark.parametrize("max_points", [4, 40, 401])
def test_long_series_are_downsampled_keeping_ends_and_extremes(store: Store, max_points: int) -> None:
    generator = random.Random(max_points)
    steps = list(range(0, 5000, 5))
    values: list[float | None] = [generator.gauss(0.0, 1.0) for _ in steps]
    values[333] = None  # a diverged evaluation
    values[600] = 50.0  # a spike that any downsampling must keep
    job = store.create_job(make_spec())
    store.write_metrics(
        job.id,
        [
            MetricPoint("val_loss", s, math.nan if v is None else v)
            for s, v in zip(steps, values, strict=True)
        ],
    )

    got_steps, got_values = store.read_metrics(job.id, ["val_loss"], max_points)["val_loss"]

    assert (got_steps, got_values) == _reference_downsample(steps, values, max_points)
    assert len(got_steps) <= max_points
    assert got_steps[0] == steps[0] and got_steps[-1] == steps[-1]
    assert 3000 in got_steps  # the spike
    finite = [value for value in values if value is not None]
    assert min(finite) in got_values and max(finite) in got_values


def test_a_short_series_comes_back_whole(store: Store) -> None:
    job = store.create_job(make_spec())
    store.write_metrics(job.id, [MetricPoint("train_accuracy", step, step / 100) for step in range(40)])
    assert store.read_metrics(job.id, None, 40) == {
        "train_accuracy": (list(range(40)), [step / 100 for step in range(40)])
    }


def test_max_points_below_one_bucket_is_refused(store: Store) -> None:
    job = store.create_job(make_spec())
    with pytest.raises(ValueError, match="max_points"):
        store.read_metrics(job.id, None, 3)


def test_writing_for_an_unknown_job_raises(store: Store) -> None:
    with pytest.raises(JobNotFound):
        store.write_metrics("0" * 32, [MetricPoint("train_loss", 0, 1.0)])


def _telemetry(step: int, layer: int, scale: float) -> TelemetryRecord:
    return TelemetryRecord(
        step=step,
        layer=layer,
        unit_p15=-scale,
        unit_p50=0.0,
        unit_p85=scale,
        p15=-2 * scale,
        p50=0.1,
        p85=2 * scale,
        mean=0.05,
        std=scale,
        saturated_fraction=None if layer == 1 else 0.25,
        grad_norm=math.nan if step == 20 else 0.5,
        ics_gradient_change=0.1 * scale,
        ics_gradient_cosine=math.nan if step == 20 else 0.75,
    )


def test_telemetry_comes_back_per_layer_as_lists(store: Store) -> None:
    job = store.create_job(make_spec())
    store.write_telemetry(job.id, [_telemetry(step, layer, 1.0) for step in (0, 10) for layer in (0, 1)])
    store.write_telemetry(job.id, [_telemetry(10, 0, 3.0), _telemetry(20, 0, 4.0)])  # rewrite + new

    layers = store.read_telemetry(job.id)

    assert [layer.layer for layer in layers] == [0, 1]
    first, second = layers
    assert first.steps == [0, 10, 20]
    assert first.unit_p85 == [1.0, 3.0, 4.0]
    assert first.p15 == [-2.0, -6.0, -8.0]
    assert first.saturated_fraction == [0.25, 0.25, 0.25]
    assert first.grad_norm == [0.5, 0.5, None]
    assert first.ics_gradient_change == pytest.approx([0.1, 0.3, 0.4])
    assert first.ics_gradient_cosine == [0.75, 0.75, None]
    assert second.steps == [0, 10]
    assert second.saturated_fraction == [None, None]


def test_landscape_probes_round_trip_with_nan_as_null(store: Store) -> None:
    job = store.create_job(make_spec())
    probe = LandscapeRecord(
        step=100,
        step_sizes=[0.01, 0.1, 1.0],
        losses=[0.5, 0.4, math.nan],
        loss_range=math.inf,
        gradient_predictiveness=0.2,
        beta_smoothness=3.5,
        grad_norm=1.25,
        relative_gradient_change=0.1,
    )
    store.write_landscape(job.id, [probe])
    store.write_landscape(job.id, [probe])

    assert store.read_landscape(job.id) == [
        LandscapeView(
            step=100,
            step_sizes=[0.01, 0.1, 1.0],
            losses=[0.5, 0.4, None],
            loss_range=None,
            gradient_predictiveness=0.2,
            beta_smoothness=3.5,
            grad_norm=1.25,
            relative_gradient_change=0.1,
        )
    ]
    with store.engine.connect() as connection:
        stored = connection.execute(sa.text("SELECT losses FROM landscape")).scalar_one()
    text = stored if isinstance(stored, str) else json.dumps(stored)
    assert "NaN" not in text and json.loads(text) == [0.5, 0.4, None]


def test_many_jobs_written_at_once_read_back_as_written_one_by_one(store: Store) -> None:
    """A fused group's batched write: each job's series (downsampled from the rollup too), telemetry and
    probes as if each job had been written alone."""
    together = [store.create_job(make_spec()) for _ in range(3)]
    alone = [store.create_job(make_spec()) for _ in range(3)]
    metrics = {
        index: [MetricPoint("val_loss", step, (index + 1) * math.sin(step / 7)) for step in range(0, 3000, 3)]
        + [MetricPoint("train_loss", step, index - step / 100) for step in range(0, 3000, 5)]
        for index in range(3)
    }
    telemetry = {index: [_telemetry(step, 0, 1.0 + index) for step in (0, 10)] for index in range(3)}
    probe = LandscapeRecord(100, [0.1], [0.5], 0.1, 0.2, 3.5, 1.25, 0.1)

    store.write_series_of_jobs(
        {job.id: metrics[index] for index, job in enumerate(together)},
        telemetry={job.id: telemetry[index] for index, job in enumerate(together)},
        landscape={together[1].id: [probe]},
    )
    for index, job in enumerate(alone):
        store.write_metrics(job.id, metrics[index])
        store.write_telemetry(job.id, telemetry[index])
    store.write_landscape(alone[1].id, [probe])

    for batched, single in zip(together, alone, strict=True):
        for max_points in (40, EVERYTHING):
            assert store.read_metrics(batched.id, None, max_points) == store.read_metrics(
                single.id, None, max_points
            )
        assert store.read_telemetry(batched.id) == store.read_telemetry(single.id)
        assert store.read_landscape(batched.id) == store.read_landscape(single.id)
    assert store.read_landscape(together[0].id) == []
