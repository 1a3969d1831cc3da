"""Reads from the metric rollup (`core.store.rollup`): series downsampled to a number of points, and the
first step where a series met a target.

Why a downsampled read is exactly the raw rule's (`SeriesStore.read_metrics`: per bucket its first, last,
lowest and highest point, earliest step on ties, extremes over finite values only): a block whose first and
last point fall into the same bucket lies wholly inside it, and the first/last/lowest/highest of a union of
blocks is the first/last/lowest/highest of their own (compared by (step) and (value, step), as the rule
does). Every other block's points are bucketed one by one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from core.store.base import metric_name_table, metric_table, rollup_table
from core.store.views import Crossing

POINTS_PER_BUCKET = 4  # first, last, lowest and highest value of each bucket

Point = tuple[int, float | None]
SeriesKey = tuple[int, int]  # (job row id, name id)


def known_name_ids(connection: Connection, cache: dict[str, int], names: Iterable[str]) -> dict[str, int]:
    """Ids of those of `names` that exist, looked up once and kept in `cache` (names never change; a read
    never creates one)."""
    wanted = set(names)
    missing = sorted(wanted - cache.keys())
    if missing:
        metric_name = metric_name_table.c
        rows = connection.execute(
            sa.select(metric_name.name, metric_name.id).where(metric_name.name.in_(missing))
        )
        cache.update({name: name_id for name, name_id in rows})
    return {name: cache[name] for name in wanted if name in cache}


def stored_name_ids(connection: Connection, job_row_id: int) -> dict[str, int]:
    """{name: name id} of every series the job has points in (one index probe per known metric name)."""
    rollup, metric_name = rollup_table.c, metric_name_table.c
    has_points = (
        sa.select(rollup.block).where(rollup.job_id == job_row_id, rollup.name_id == metric_name.id).exists()
    )
    rows = connection.execute(sa.select(metric_name.name, metric_name.id).where(has_points))
    return {name: name_id for name, name_id in rows}


def downsampled_series(
    connection: Connection,
    is_postgres: bool,
    job_row_ids: Sequence[int],
    name_ids: Sequence[int],
    max_points: int,
) -> dict[SeriesKey, list[Point]]:
    """Every stored series of the given jobs × names, in step order, in one statement; a series longer
    than `max_points` cut into `max_points // 4` equal step buckets over its own extent, each keeping its
    first, last, lowest and highest point. Series without points are absent."""
    if not job_row_ids or not name_ids:
        return {}
    buckets = _Buckets(job_row_ids, name_ids, max_points)
    series: dict[SeriesKey, list[Point]] = {}
    if is_postgres:
        _without_jit(connection)
        for bucket in connection.execute(_bucket_extremes_postgresql(buckets)):
            _add_bucket(series.setdefault((bucket.job_id, bucket.name_id), []), bucket)
        return {key: sorted(dict(points).items()) for key, points in series.items()}
    for job_row_id, name_id, step, value in connection.execute(_bucket_extremes_sqlite(buckets)):
        series.setdefault((job_row_id, name_id), []).append((step, value))
    return series


def _without_jit(connection: Connection) -> None:
    """PostgreSQL compiles a statement to machine code once its cost estimate passes `jit_above_cost`
    (100,000). These estimates grow with the number and length of the series read at once (13,000 for ten
    series of 50,000 points, so fifty long ones pass it), and compiling took 40 ms here (1 s where it also
    inlined) to save microseconds. Off for this transaction."""
    connection.exec_driver_sql("SET LOCAL jit = off")


class _Buckets:
    """The buckets of a set of series: per series, equal step ranges over its extent, max_points // 4 of
    them — the bucket of a step is (step - first step) × count // span. A series of at most max_points
    points puts every point in a bucket of its own (bucket = step), so all of them are kept."""

    def __init__(self, job_row_ids: Sequence[int], name_ids: Sequence[int], max_points: int) -> None:
        rollup = rollup_table.c
        self.selected = sa.and_(rollup.job_id.in_(sorted(job_row_ids)), rollup.name_id.in_(sorted(name_ids)))
        self.extent = (
            sa.select(
                rollup.job_id,
                rollup.name_id,
                sa.func.sum(rollup.points).label("points"),
                sa.func.min(rollup.first_step).label("first_step"),
                (sa.func.max(rollup.last_step) - sa.func.min(rollup.first_step) + 1).label("span"),
            )
            .where(self.selected)
            .group_by(rollup.job_id, rollup.name_id)
            .cte("extent")
        )
        self._count = max_points // POINTS_PER_BUCKET
        self._max_points = max_points

    def of_series(
        self, job_id: sa.ColumnElement[int], name_id: sa.ColumnElement[int]
    ) -> sa.ColumnElement[bool]:
        """Join condition: the extent row of the series (job_id, name_id)."""
        return sa.and_(self.extent.c.job_id == job_id, self.extent.c.name_id == name_id)

    def of(self, step: sa.ColumnElement[int]) -> sa.ColumnElement[int]:
        """The bucket of `step` (in a statement joined to the extent of its series)."""
        extent = self.extent.c
        return sa.case(
            (extent.points <= self._max_points, sa.cast(step, sa.BigInteger)),
            # Widened: step × count must not overflow a 32-bit integer.
            else_=(sa.cast(step - extent.first_step, sa.BigInteger) * self._count) // extent.span,
        )

    def rollup_joined(self) -> sa.Join:
        rollup = rollup_table.c
        return rollup_table.join(self.extent, self.of_series(rollup.job_id, rollup.name_id))

    def holds_whole_block(self) -> sa.ColumnElement[bool]:
        """A block whose first and last point share a bucket: the bucket holds all of it."""
        rollup = rollup_table.c
        return self.of(rollup.first_step) == self.of(rollup.last_step)

    def cuts_block(self) -> sa.ColumnElement[bool]:
        """The other blocks. Written "<" rather than "≠" (buckets only grow with the step): the planner
        then expects a third of the blocks to be cut rather than nearly all, closer to the truth."""
        rollup = rollup_table.c
        return self.of(rollup.first_step) < self.of(rollup.last_step)


def _bucket_extremes_postgresql(buckets: _Buckets) -> sa.Select[Any]:
    """One row per series and bucket with its first, last, lowest and highest point as [step, value] /
    [value, ±step] arrays (min/max then pick a point with its partner, earliest step on ties), aggregated
    from whole blocks' summaries and the inline points of the blocks cut by a bucket edge."""
    rollup = rollup_table.c

    def as_double(step: sa.ColumnElement[int]) -> sa.ColumnElement[float]:
        return sa.cast(step, sa.Double)

    def extreme(value: sa.ColumnElement[Any], step: sa.ColumnElement[float]) -> sa.ColumnElement[Any]:
        return sa.case((value.is_not(None), postgresql.array([value, step])))

    whole_blocks = (
        sa.select(
            rollup.job_id,
            rollup.name_id,
            buckets.of(rollup.first_step).label("bucket"),
            postgresql.array([as_double(rollup.first_step), rollup.first_value]).label("first"),
            postgresql.array([as_double(rollup.last_step), rollup.last_value]).label("last"),
            extreme(rollup.lowest_value, as_double(rollup.lowest_step)).label("lowest"),
            extreme(rollup.highest_value, -as_double(rollup.highest_step)).label("highest"),
        )
        .select_from(buckets.rollup_joined())
        .where(buckets.selected, buckets.holds_whole_block())
    )
    point = (
        sa.func.unnest(rollup.point_steps, rollup.point_values)
        .table_valued("step", "value")
        .render_derived("point")
    )
    step = as_double(point.c.step)
    cut_blocks = (
        sa.select(
            rollup.job_id,
            rollup.name_id,
            buckets.of(point.c.step).label("bucket"),
            postgresql.array([step, point.c.value]).label("first"),
            postgresql.array([step, point.c.value]).label("last"),
            extreme(point.c.value, step).label("lowest"),
            extreme(point.c.value, -step).label("highest"),
        )
        # A function in FROM may read the columns of the tables before it (PostgreSQL: implicitly lateral).
        .select_from(buckets.rollup_joined().join(point, sa.true()))
        .where(buckets.selected, buckets.cuts_block())
    )
    pieces = sa.union_all(whole_blocks, cut_blocks).subquery("pieces")
    return sa.select(
        pieces.c.job_id,
        pieces.c.name_id,
        sa.func.min(pieces.c.first).label("first"),
        sa.func.max(pieces.c.last).label("last"),
        sa.func.min(pieces.c.lowest).label("lowest"),
        sa.func.max(pieces.c.highest).label("highest"),
    ).group_by(pieces.c.job_id, pieces.c.name_id, pieces.c.bucket)


def _add_bucket(points: list[Point], bucket: Any) -> None:
    """A bucket row of `_bucket_extremes_postgresql` as its (step, value) points (one point may be
    several of first/last/lowest/highest; the caller keeps one per step)."""
    for step, value in (bucket.first, bucket.last):
        points.append((int(step), value))
    if bucket.lowest is not None:
        points.append((int(bucket.lowest[1]), bucket.lowest[0]))
        points.append((int(-bucket.highest[1]), bucket.highest[0]))


def as_lists(points: Sequence[Point]) -> tuple[list[int], list[float | None]]:
    """Parallel (steps, values) lists of points."""
    return [step for step, _ in points], [value for _, value in points]


def _bucket_extremes_sqlite(buckets: _Buckets) -> sa.Select[Any]:
    """(job row id, name id, step, value) rows in series and step order: the candidate points — whole
    blocks' first/last/lowest/highest and every point of the blocks cut by a bucket edge, read from
    `metric` — ranked per bucket four ways by window functions; the first of each ranking is kept."""
    rollup, metric = rollup_table.c, metric_table.c
    whole = sa.and_(buckets.selected, buckets.holds_whole_block())
    series = (rollup.job_id, rollup.name_id)
    summaries = [
        sa.select(*series, step, value).select_from(buckets.rollup_joined()).where(whole, *also)
        for step, value, also in (
            (rollup.first_step.label("step"), rollup.first_value.label("value"), ()),
            (rollup.last_step, rollup.last_value, ()),
            (rollup.lowest_step, rollup.lowest_value, (rollup.lowest_step.is_not(None),)),
            (rollup.highest_step, rollup.highest_value, (rollup.highest_step.is_not(None),)),
        )
    ]
    in_cut_block = sa.and_(
        metric.job_id == rollup.job_id,
        metric.name_id == rollup.name_id,
        metric.step.between(rollup.first_step, rollup.last_step),
    )
    cut_points = (
        sa.select(*series, metric.step, metric.value)
        .select_from(buckets.rollup_joined().join(metric_table, in_cut_block))
        .where(buckets.selected, buckets.cuts_block())
    )
    candidate = sa.union(*summaries, cut_points).subquery("candidate")
    point = candidate.c
    partition = (point.job_id, point.name_id, buckets.of(point.step))
    ranked = (
        sa.select(
            point.job_id,
            point.name_id,
            point.step,
            point.value,
            sa.func.row_number().over(partition_by=partition, order_by=point.step.asc()).label("from_first"),
            sa.func.row_number().over(partition_by=partition, order_by=point.step.desc()).label("from_last"),
            sa.func.row_number()
            .over(partition_by=partition, order_by=(point.value.asc().nulls_last(), point.step))
            .label("from_lowest"),
            sa.func.row_number()
            .over(partition_by=partition, order_by=(point.value.desc().nulls_last(), point.step))
            .label("from_highest"),
        )
        .select_from(candidate.join(buckets.extent, buckets.of_series(point.job_id, point.name_id)))
        .subquery("ranked")
    )
    kept = ranked.c
    return (
        sa.select(kept.job_id, kept.name_id, kept.step, kept.value)
        .where(
            sa.or_(kept.from_first == 1, kept.from_last == 1, kept.from_lowest == 1, kept.from_highest == 1)
        )
        .order_by(kept.job_id, kept.name_id, kept.step)
    )


# -- target crossings ---------------------------------------------------------------------------------


def first_steps_meeting(
    connection: Connection,
    is_postgres: bool,
    job_row_ids: Sequence[int],
    name_id: int,
    target: float,
    higher_is_better: bool,
) -> dict[int, Crossing]:
    """{job row id: (step, value)} of the first point of each job's series `name_id` meeting the target
    (jobs whose series never did are absent).

    The rollup finds the first block whose best finite value meets it (one row per block, in block order,
    stopping there); the point is then looked up from that block's first step on, so within that block.
    PostgreSQL does all jobs in one statement (lateral joins); SQLite, in process, one statement a job.
    """
    rollup, metric = rollup_table.c, metric_table.c
    block_meets = rollup.highest_value >= target if higher_is_better else rollup.lowest_value <= target
    point_meets = metric.value >= target if higher_is_better else metric.value <= target

    def first_block_start(job_id: sa.ColumnElement[int] | int) -> sa.Select[Any]:
        return (
            sa.select(rollup.first_step)
            .where(rollup.job_id == job_id, rollup.name_id == name_id, block_meets)
            .order_by(rollup.block)
            .limit(1)
        )

    def first_point(job_id: sa.ColumnElement[int] | int, from_step: Any) -> sa.Select[Any]:
        return (
            sa.select(metric.step, metric.value)
            .where(metric.job_id == job_id, metric.name_id == name_id, metric.step >= from_step, point_meets)
            .order_by(metric.step)
            .limit(1)
        )

    if is_postgres:
        job = sa.values(sa.column("job_id", sa.BigInteger), name="job").data(
            [(row_id,) for row_id in job_row_ids]
        )
        block = first_block_start(job.c.job_id).lateral("block")
        point = first_point(job.c.job_id, block.c.first_step).lateral("point")
        rows = connection.execute(
            sa.select(job.c.job_id, point.c.step, point.c.value).select_from(
                job.join(block, sa.true()).join(point, sa.true())
            )
        )
        return {job_row_id: (int(step), float(value)) for job_row_id, step, value in rows}
    crossings: dict[int, Crossing] = {}
    for job_row_id in job_row_ids:
        row = connection.execute(
            first_point(job_row_id, first_block_start(job_row_id).scalar_subquery())
        ).first()
        if row is not None:
            crossings[job_row_id] = (int(row.step), float(row.value))
    return crossings
