"""The metric rollup the batch write keeps, on both databases: it always equals a recomputation from the
stored points (first writes, rewrites with other or identical values, NaN, gaps, batches that cut blocks),
and the reads built on it — downsampled series and target crossings, one job or many — give what the
documented rule gives on the raw points."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
import sqlalchemy as sa

from core.db.tables import ROLLUP_BLOCK_STEPS
from core.results import MetricPoint
from core.store import Store
from tests.core.test_store import make_spec
from tests.core.test_store_series import _reference_downsample

Series = dict[int, float | None]  # step → value (None: not finite)


def _points(name: str, series: Series) -> list[MetricPoint]:
    return [MetricPoint(name, step, math.nan if value is None else value) for step, value in series.items()]


def _expected_blocks(series: Series) -> dict[int, dict[str, Any]]:
    """The rollup rows a series must have, computed from its points: first, last, lowest and highest
    point per block (extremes over finite values, earliest step on ties)."""
    blocks: dict[int, list[tuple[int, float | None]]] = {}
    for step in sorted(series):
        blocks.setdefault(step // ROLLUP_BLOCK_STEPS, []).append((step, series[step]))
    expected = {}
    for block, points in blocks.items():
        finite = [(step, value) for step, value in points if value is not None]
        lowest = min(finite, key=lambda point: (point[1], point[0]), default=(None, None))
        highest = min(finite, key=lambda point: (-point[1], point[0]), default=(None, None))  # type: ignore[operator]
        expected[block] = {
            "points": len(points),
            "first_step": points[0][0],
            "first_value": points[0][1],
            "last_step": points[-1][0],
            "last_value": points[-1][1],
            "lowest_step": lowest[0],
            "lowest_value": lowest[1],
            "highest_step": highest[0],
            "highest_value": highest[1],
        }
    return expected


def _stored_blocks(store: Store, job_id: str, name: str) -> dict[int, dict[str, Any]]:
    """The job's rollup rows of one metric; on PostgreSQL also checks the inline points against `metric`."""
    with store.engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT r.* FROM metric_rollup r JOIN metric_name n ON n.id = r.name_id "
                "JOIN job j ON j.id = r.job_id WHERE j.public_id = :job AND n.name = :name ORDER BY r.block"
            ),
            {"job": job_id, "name": name},
        ).mappings()
        stored = {}
        for row in rows:
            fields = dict(row)
            point_steps, point_values = fields.pop("point_steps"), fields.pop("point_values")
            if store.is_postgres:
                assert point_steps[0] == fields["first_step"] and point_steps[-1] == fields["last_step"]
                assert len(point_steps) == len(point_values) == fields["points"]
                fields["inline"] = dict(zip(point_steps, point_values, strict=True))
            block = fields.pop("block")
            stored[block] = {
                name: value for name, value in fields.items() if name not in ("job_id", "name_id")
            }
    return stored


def _assert_rollup_matches(store: Store, job_id: str, name: str, series: Series) -> None:
    stored = _stored_blocks(store, job_id, name)
    if store.is_postgres:
        for block, row in stored.items():
            assert row.pop("inline") == {
                step: value for step, value in series.items() if step // ROLLUP_BLOCK_STEPS == block
            }
    assert stored == _expected_blocks(series)


def _random_series(generator: random.Random, steps: range) -> Series:
    series: Series = {}
    for step in steps:
        if generator.random() < 0.2:
            continue  # a gap: not every step is evaluated
        series[step] = None if generator.random() < 0.05 else round(generator.gauss(0.0, 1.0), 1)
    return series


def test_the_rollup_follows_writes_rewrites_and_nan(store: Store) -> None:
    generator = random.Random(7)
    job = store.create_job(make_spec())
    series = _random_series(generator, range(3, 500))
    ordered = sorted(series)
    # Batches of odd sizes, so most of them start and end inside a block.
    for start in range(0, len(ordered), 37):
        store.write_metrics(
            job.id, _points("val_loss", {step: series[step] for step in ordered[start : start + 37]})
        )
    _assert_rollup_matches(store, job.id, "val_loss", series)

    # A redelivered job rewrites a stretch with other values (the old extremes among them) and goes on.
    lowest_step = min((step for step in series if series[step] is not None), key=lambda step: series[step])  # type: ignore[arg-type,return-value]
    rewritten = {step: round(generator.gauss(5.0, 1.0), 1) for step in range(max(0, lowest_step - 20), 600)}
    store.write_metrics(job.id, _points("val_loss", rewritten))
    series.update(rewritten)
    _assert_rollup_matches(store, job.id, "val_loss", series)

    # The same batch once more changes nothing.
    store.write_metrics(job.id, _points("val_loss", rewritten))
    _assert_rollup_matches(store, job.id, "val_loss", series)


def test_blocks_of_only_nan_have_no_extremes(store: Store) -> None:
    job = store.create_job(make_spec())
    series: Series = {step: None for step in range(ROLLUP_BLOCK_STEPS)} | {ROLLUP_BLOCK_STEPS: 1.5}
    store.write_metrics(job.id, _points("train_loss", series))
    _assert_rollup_matches(store, job.id, "train_loss", series)
    assert _stored_blocks(store, job.id, "train_loss")[0]["lowest_step"] is None


def test_an_identical_rewrite_leaves_the_rollup_rows_alone(migrated_postgres_url: str) -> None:
    store = Store(migrated_postgres_url)
    try:
        job = store.create_job(make_spec())
        points = [MetricPoint("val_accuracy", step, step / 1000) for step in range(200)]
        store.write_metrics(job.id, points)

        def row_versions() -> list[tuple[int, str]]:
            with store.engine.connect() as connection:
                return [
                    (block, str(xmin))
                    for block, xmin in connection.execute(
                        sa.text("SELECT block, xmin FROM metric_rollup ORDER BY block")
                    )
                ]

        before = row_versions()
        store.write_metrics(job.id, points)
        assert row_versions() == before
        store.write_metrics(job.id, [MetricPoint("val_accuracy", 150, 0.0)])
        changed = {
            block
            for (block, version), (_, earlier) in zip(row_versions(), before, strict=True)
            if version != earlier
        }
        assert changed == {150 // ROLLUP_BLOCK_STEPS}
    finally:
        store.dispose()


@pytest.mark.parametrize("max_points", [4, 10, 64, 250, 399, 1000, 5000])
def test_downsampled_reads_follow_the_rule_on_random_series(store: Store, max_points: int) -> None:
    generator = random.Random(max_points)
    job = store.create_job(make_spec())
    expected = {}
    for name, steps in (("val_loss", range(0, 3000)), ("val_accuracy", range(17, 9000, 7))):
        series = _random_series(generator, steps)
        series[max(series)] = 100.0  # an extreme on the very last point
        store.write_metrics(job.id, _points(name, series))
        ordered = sorted(series)
        expected[name] = _reference_downsample(ordered, [series[step] for step in ordered], max_points)

    assert store.read_metrics(job.id, None, max_points) == expected
    assert store.read_metrics(job.id, ["val_accuracy", "train_loss"], max_points) == {
        "val_accuracy": expected["val_accuracy"],
        "train_loss": ([], []),
    }


def test_a_comparison_read_gives_each_job_its_series_and_exact_crossing(store: Store) -> None:
    generator = random.Random(3)
    jobs = [store.create_job(make_spec()) for _ in range(3)]
    for index, job in enumerate(jobs[:2]):
        accuracy = {
            step: min(0.99, step / (2000 + 500 * index) + generator.gauss(0.0, 0.01)) for step in range(2500)
        }
        store.write_metrics(job.id, _points("val_accuracy", accuracy))
    # The third job has no points at all.

    read = store.read_series_with_crossings([job.id for job in jobs], "val_accuracy", 100, 0.9, True)

    assert list(read) == [job.id for job in jobs]
    for job in jobs:
        steps, values = store.read_metrics(job.id, ["val_accuracy"], 100)["val_accuracy"]
        assert (read[job.id].steps, read[job.id].values) == (steps, values)
        assert read[job.id].crossing == store.first_step_meeting(job.id, "val_accuracy", 0.9, True)
    assert read[jobs[0].id].crossing is not None and read[jobs[1].id].crossing is not None
    assert read[jobs[0].id].crossing[0] < read[jobs[1].id].crossing[0]
    assert read[jobs[2].id].steps == [] and read[jobs[2].id].crossing is None

    without_target = store.read_series_with_crossings([jobs[0].id], "val_accuracy", 100, None, True)
    assert without_target[jobs[0].id].crossing is None
    unknown_metric = store.read_series_with_crossings([jobs[0].id], "never_written", 100, 0.5, True)
    assert unknown_metric[jobs[0].id].steps == [] and unknown_metric[jobs[0].id].crossing is None


def test_crossings_are_exact_for_losses_and_never_on_nan(store: Store) -> None:
    job = store.create_job(make_spec())
    loss: Series = {step: 3.0 - step / 1000 for step in range(3000)}
    loss[1234] = None  # a NaN never meets "≤ target"
    loss[1235] = 0.5  # the first point at or below 1.0
    store.write_metrics(job.id, _points("val_loss", loss))
    expected = next(
        (step, value) for step, value in sorted(loss.items()) if value is not None and value <= 1.0
    )
    assert (
        store.first_step_meeting(job.id, "val_loss", 1.0, higher_is_better=False) == expected == (1235, 0.5)
    )
    assert store.first_step_meeting(job.id, "val_loss", -1.0, higher_is_better=False) is None
