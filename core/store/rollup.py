"""The metric rollup (`core.db.tables.MetricRollup`) and how the batch write keeps it; downsampled reads and
target crossings read it in `core.store.rollup_reads`.

Why it exists: a comparison cuts long series (tens of thousands of evaluations) into a few hundred buckets.
Reading the raw points makes the database visit every one of them (twice: once for the series' extent);
reading the rollup visits one row per block of ROLLUP_BLOCK_STEPS steps, plus the single points of the
blocks that straddle a bucket edge — for 50,000 points in 250 buckets about 2,900 whole blocks and 3,700
points instead of 100,000 rows. `benchmarks/compare_latency.py` went from p95 360–700 ms to 110–180 ms.

A block is recomputed from `metric` inside the transaction that wrote its points, so it always agrees with
them.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from core.db.tables import ROLLUP_BLOCK_STEPS
from core.store.base import metric_table, rollup_table

# pg_advisory_xact_lock(class, key) namespace for "one job's metric writes" (an arbitrary constant).
_WRITE_LOCK_CLASS = 0x6D65_7472  # "metr"


def lock_jobs_metrics(connection: Connection, job_row_ids: Sequence[int]) -> None:
    """PostgreSQL: serialize metric writes of each of the jobs until the transaction ends, in one statement.

    A block is recomputed from what the writing transaction sees; two concurrent writers of disjoint steps
    of one block would each miss the other's points. Writers of one job are rare (a taken-over lease whose
    old worker still runs), so the lock is uncontended in practice. The locks are taken in key order, so
    that two writers of overlapping sets of jobs cannot deadlock. SQLite serializes writers by itself.
    """
    keys = sorted({row_id % 2**31 for row_id in job_row_ids})
    connection.execute(
        sa.text(
            "SELECT pg_advisory_xact_lock(:lock_class, key) "
            "FROM (SELECT unnest(CAST(:keys AS integer[])) AS key ORDER BY key) AS keys"
        ),
        {"lock_class": _WRITE_LOCK_CLASS, "keys": keys},
    )


def step_range_per_name(sorted_keys: Sequence[tuple[int, int]]) -> dict[int, tuple[int, int]]:
    """Per name id, the first and last step among sorted (name id, step) keys."""
    ranges: dict[int, tuple[int, int]] = {}
    start = 0
    while start < len(sorted_keys):
        name_id, first_step = sorted_keys[start]
        end = bisect.bisect_left(sorted_keys, (name_id + 1, -1), lo=start)  # steps are ≥ 0
        ranges[name_id] = (first_step, sorted_keys[end - 1][1])
        start = end
    return ranges


def refresh_blocks(
    connection: Connection, is_postgres: bool, changed: Mapping[tuple[int, int], tuple[int, int]]
) -> None:
    """Recompute from `metric`, inside the writing transaction and in one statement for every job, each
    rollup block that holds a step within `changed` ({(job row id, name id): (first step, last step)} of
    what was written). A block whose content came out the same is left alone, so it gets no new row
    version."""
    if not changed:
        return
    metric = metric_table.c

    def block_start(step: int) -> int:
        return step // ROLLUP_BLOCK_STEPS * ROLLUP_BLOCK_STEPS

    # The job inside every term: each term is then one range of the primary key (SQLite too).
    within = sa.or_(
        *(
            sa.and_(
                metric.job_id == job_row_id,
                metric.name_id == name_id,
                metric.step.between(block_start(first), block_start(last) + ROLLUP_BLOCK_STEPS - 1),
            )
            for (job_row_id, name_id), (first, last) in sorted(changed.items())
        )
    )
    blocks = _block_summaries_postgresql(within) if is_postgres else _block_summaries_sqlite(within)
    columns = [column.name for column in blocks.selected_columns]
    insert = (postgresql.insert if is_postgres else sqlite.insert)(rollup_table).from_select(columns, blocks)
    updated = [name for name in columns if name not in ("job_id", "name_id", "block")]
    stored = sa.tuple_(*(rollup_table.c[name] for name in updated))
    incoming = sa.tuple_(*(insert.excluded[name] for name in updated))
    connection.execute(
        insert.on_conflict_do_update(
            index_elements=["job_id", "name_id", "block"],
            set_={name: insert.excluded[name] for name in updated},
            where=stored.is_distinct_from(incoming),
        )
    )


def _block_of(step: sa.ColumnElement[int]) -> sa.ColumnElement[int]:
    return step // ROLLUP_BLOCK_STEPS


def _block_summaries_postgresql(within: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """The block's points collected in step order (its first and last are their ends); min/max over
    [value, ±step] arrays pick the lowest and highest point together with its step."""
    metric = metric_table.c
    step = sa.cast(metric.step, sa.Double)
    finite = metric.value.is_not(None)
    block = _block_of(metric.step)
    aggregated = (
        sa.select(
            metric.job_id,
            metric.name_id,
            block.label("block"),
            sa.func.count().label("points"),
            sa.func.min(postgresql.array([metric.value, step])).filter(finite).label("lowest"),
            sa.func.max(postgresql.array([metric.value, -step])).filter(finite).label("highest"),
            sa.func.array_agg(postgresql.aggregate_order_by(metric.step, metric.step)).label("point_steps"),
            sa.func.array_agg(postgresql.aggregate_order_by(metric.value, metric.step)).label("point_values"),
        )
        .where(within)
        .group_by(metric.job_id, metric.name_id, block)
        .subquery("aggregated")
    )
    summary = aggregated.c
    return sa.select(
        summary.job_id,
        summary.name_id,
        summary.block,
        summary.points,
        summary.point_steps[1].label("first_step"),
        summary.point_values[1].label("first_value"),
        summary.point_steps[summary.points].label("last_step"),
        summary.point_values[summary.points].label("last_value"),
        sa.cast(summary.lowest[2], sa.Integer).label("lowest_step"),
        summary.lowest[1].label("lowest_value"),
        sa.cast(-summary.highest[2], sa.Integer).label("highest_step"),
        summary.highest[1].label("highest_value"),
        summary.point_steps,
        summary.point_values,
    )


def _block_summaries_sqlite(within: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """Window functions rank each block's points four ways; each summary column keeps the first of one
    ranking."""
    metric = metric_table.c
    block = _block_of(metric.step)
    partition = (metric.job_id, metric.name_id, block)
    ranked = (
        sa.select(
            metric.job_id,
            metric.name_id,
            block.label("block"),
            metric.step,
            metric.value,
            sa.func.row_number().over(partition_by=partition, order_by=metric.step.asc()).label("from_first"),
            sa.func.row_number().over(partition_by=partition, order_by=metric.step.desc()).label("from_last"),
            sa.func.row_number()
            .over(partition_by=partition, order_by=(metric.value.asc().nulls_last(), metric.step))
            .label("from_lowest"),
            sa.func.row_number()
            .over(partition_by=partition, order_by=(metric.value.desc().nulls_last(), metric.step))
            .label("from_highest"),
        )
        .where(within)
        .subquery("ranked")
    )
    point = ranked.c
    finite = point.value.is_not(None)

    def kept(ranking: sa.ColumnElement[int], column: sa.ColumnElement[Any], *when: Any) -> Any:
        return sa.func.max(sa.case((sa.and_(ranking == 1, *when), column)))

    return (
        sa.select(
            point.job_id,
            point.name_id,
            point.block,
            sa.func.count().label("points"),
            kept(point.from_first, point.step).label("first_step"),
            kept(point.from_first, point.value).label("first_value"),
            kept(point.from_last, point.step).label("last_step"),
            kept(point.from_last, point.value).label("last_value"),
            kept(point.from_lowest, point.step, finite).label("lowest_step"),
            kept(point.from_lowest, point.value, finite).label("lowest_value"),
            kept(point.from_highest, point.step, finite).label("highest_step"),
            kept(point.from_highest, point.value, finite).label("highest_value"),
        )
        # SQLite needs a WHERE before ON CONFLICT in INSERT … SELECT (else ON could start a join).
        .where(sa.true())
        .group_by(point.job_id, point.name_id, point.block)
    )
