"""Per-step series of a job: metrics (batched idempotent upserts, downsampled in SQL on the way out),
layer telemetry and loss-landscape probes.

Non-finite values (NaN, ±inf: a diverged run) are stored as NULL and read back as None.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row

from core.db.tables import Landscape, Metric, MetricName, Telemetry
from core.results import LandscapeRecord, MetricPoint, TelemetryRecord
from core.store.base import StoreBase, finite_or_none
from core.store.notifications import notify_job_changed
from core.store.views import LandscapeView, LayerTelemetry, MetricSeries

metric_table: sa.Table = Metric.__table__  # type: ignore[assignment]
metric_name_table: sa.Table = MetricName.__table__  # type: ignore[assignment]
telemetry_table: sa.Table = Telemetry.__table__  # type: ignore[assignment]
landscape_table: sa.Table = Landscape.__table__  # type: ignore[assignment]

TELEMETRY_STATISTICS = (
    "unit_p15",
    "unit_p50",
    "unit_p85",
    "p15",
    "p50",
    "p85",
    "mean",
    "std",
    "saturated_fraction",
    "grad_norm",
)
LANDSCAPE_STATISTICS = (
    "loss_range",
    "gradient_predictiveness",
    "beta_smoothness",
    "grad_norm",
    "relative_gradient_change",
)
POINTS_PER_BUCKET = 4  # first, last, lowest and highest value of each bucket

# PostgreSQL path: COPY (binary) into a per-session staging table, then one INSERT … ON CONFLICT from it.
# The staging table is a session-local scratch table, not part of the schema the migrations own.
_CREATE_STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS metric_staging "
    "(job_id bigint NOT NULL, name_id smallint NOT NULL, step integer NOT NULL, value double precision) "
    "ON COMMIT DELETE ROWS"
)
_COPY_TO_STAGING = "COPY metric_staging (job_id, name_id, step, value) FROM STDIN (FORMAT BINARY)"
_UPSERT_FROM_STAGING = (
    "INSERT INTO metric (job_id, name_id, step, value) "
    "SELECT job_id, name_id, step, value FROM metric_staging "
    "ON CONFLICT (job_id, name_id, step) DO UPDATE SET value = EXCLUDED.value "
    # A redelivered job mostly rewrites identical values: leaving those rows alone writes no new versions.
    "WHERE metric.value IS DISTINCT FROM EXCLUDED.value"
)


class SeriesStore(StoreBase):
    # -- metrics ---------------------------------------------------------------------------------------
    def write_metrics(self, job_id: str, points: Sequence[MetricPoint]) -> None:
        """Store a batch of points in one transaction; rewriting a (name, step) replaces its value, so a
        redelivered job rewrites and never duplicates. Within a batch the last point of a key wins."""
        if not points:
            return
        name_ids = self._intern_metric_names({point.name for point in points})
        values: dict[tuple[int, int], float | None] = {}
        for point in points:
            values[(name_ids[point.name], point.step)] = finite_or_none(point.value)
        with self._engine.begin() as connection:
            row_id = self._job_row_id(connection, job_id)
            rows = [(row_id, name_id, step, value) for (name_id, step), value in sorted(values.items())]
            if self.is_postgres:
                _copy_upsert_metrics(connection, rows)
            else:
                columns = ("job_id", "name_id", "step", "value")
                self._upsert(
                    connection,
                    metric_table,
                    [dict(zip(columns, row, strict=True)) for row in rows],
                    ["job_id", "name_id", "step"],
                )
            notify_job_changed(connection, job_id)

    def _intern_metric_names(self, names: Iterable[str]) -> dict[str, int]:
        """Small integer ids for metric names, created on first use (concurrent writers agree)."""
        missing = sorted(set(names) - self._metric_name_ids.keys())
        if missing:
            insert = (postgresql.insert if self.is_postgres else sqlite.insert)(metric_name_table)
            with self._engine.begin() as connection:
                connection.execute(
                    insert.on_conflict_do_nothing(index_elements=["name"]),
                    [{"name": name} for name in missing],
                )
                stored = connection.execute(
                    sa.select(metric_name_table.c.name, metric_name_table.c.id).where(
                        metric_name_table.c.name.in_(missing)
                    )
                )
                self._metric_name_ids.update({name: name_id for name, name_id in stored})
        return {name: self._metric_name_ids[name] for name in names}

    def read_metrics(
        self, job_id: str, names: Sequence[str] | None = None, max_points: int = 1000
    ) -> MetricSeries:
        """{name: (steps, values)} for the named series (all of the job's when None; a named series
        without points comes back empty), in step order.

        A series longer than `max_points` is downsampled in SQL: its steps are cut into max_points // 4
        equal buckets and each bucket keeps its first, last, lowest and highest point, so the curve's
        ends and extremes (a divergence spike included) survive. `max_points` must be at least 4.
        """
        if max_points < POINTS_PER_BUCKET:
            raise ValueError(f"max_points must be at least {POINTS_PER_BUCKET}")
        metric, metric_name = metric_table.c, metric_name_table.c
        with self._engine.connect() as connection:
            condition = metric.job_id == self._job_row_id(connection, job_id)
            if names is not None:
                condition = sa.and_(condition, metric_name.name.in_(list(names)))
            rows: Iterable[tuple[str, int, float | None]]
            if self.is_postgres:
                rows = _points_of_buckets(connection.execute(_bucket_extremes_query(condition, max_points)))
            else:
                rows = connection.execute(_downsampled_metrics_query(condition, max_points)).all()
        series: MetricSeries = {name: ([], []) for name in names or ()}
        for name, step, value in rows:
            steps, values = series.setdefault(name, ([], []))
            steps.append(step)
            values.append(value)
        return series

    # -- telemetry ---------------------------------------------------------------------------------------
    def write_telemetry(self, job_id: str, records: Sequence[TelemetryRecord]) -> None:
        if not records:
            return
        with self._engine.begin() as connection:
            row_id = self._job_row_id(connection, job_id)
            rows = {
                (record.step, record.layer): {
                    "job_id": row_id,
                    "step": record.step,
                    "layer": record.layer,
                    **{name: finite_or_none(getattr(record, name)) for name in TELEMETRY_STATISTICS},
                }
                for record in records
            }
            self._upsert(connection, telemetry_table, list(rows.values()), ["job_id", "step", "layer"])

    def read_telemetry(self, job_id: str) -> list[LayerTelemetry]:
        """Per hidden layer (in layer order), the probe steps and each statistic as parallel lists."""
        telemetry = telemetry_table.c
        with self._engine.connect() as connection:
            rows = connection.execute(
                sa.select(telemetry_table)
                .where(telemetry.job_id == self._job_row_id(connection, job_id))
                .order_by(telemetry.layer, telemetry.step)
            ).all()
        layers: dict[int, dict[str, list[Any]]] = {}
        for row in rows:
            lists = layers.setdefault(row.layer, {name: [] for name in ("steps", *TELEMETRY_STATISTICS)})
            lists["steps"].append(row.step)
            for name in TELEMETRY_STATISTICS:
                lists[name].append(getattr(row, name))
        return [LayerTelemetry(layer=layer, **lists) for layer, lists in layers.items()]

    # -- landscape ---------------------------------------------------------------------------------------
    def write_landscape(self, job_id: str, records: Sequence[LandscapeRecord]) -> None:
        if not records:
            return
        with self._engine.begin() as connection:
            row_id = self._job_row_id(connection, job_id)
            rows = {
                record.step: {
                    "job_id": row_id,
                    "step": record.step,
                    "step_sizes": [finite_or_none(size) for size in record.step_sizes],
                    "losses": [finite_or_none(loss) for loss in record.losses],
                    **{name: finite_or_none(getattr(record, name)) for name in LANDSCAPE_STATISTICS},
                }
                for record in records
            }
            self._upsert(connection, landscape_table, list(rows.values()), ["job_id", "step"])

    def read_landscape(self, job_id: str) -> list[LandscapeView]:
        landscape = landscape_table.c
        with self._engine.connect() as connection:
            rows = connection.execute(
                sa.select(landscape_table)
                .where(landscape.job_id == self._job_row_id(connection, job_id))
                .order_by(landscape.step)
            ).all()
        return [
            LandscapeView(
                step=row.step,
                step_sizes=list(row.step_sizes),
                losses=list(row.losses),
                **{name: getattr(row, name) for name in LANDSCAPE_STATISTICS},
            )
            for row in rows
        ]


def _copy_upsert_metrics(connection: Connection, rows: list[tuple[int, int, int, float | None]]) -> None:
    """PostgreSQL: binary COPY into the staging table, then one set-based upsert into `metric`."""
    connection.exec_driver_sql(_CREATE_STAGING)
    driver_connection = connection.connection.driver_connection
    assert driver_connection is not None
    with driver_connection.cursor() as cursor:
        with cursor.copy(_COPY_TO_STAGING) as copy:
            copy.set_types(["int8", "int2", "int4", "float8"])
            for row in rows:
                copy.write_row(row)
        cursor.execute(_UPSERT_FROM_STAGING)


def _bucket_extent(
    condition: sa.ColumnElement[bool], max_points: int
) -> tuple[sa.Subquery, sa.ColumnElement[int]]:
    """Each matching series' extent, and the bucket of a point: equal step ranges, max_points // 4 of them;
    a series within budget puts every point in a bucket of its own (bucket = step), so all are kept."""
    metric, metric_name = metric_table.c, metric_name_table.c
    buckets = max_points // POINTS_PER_BUCKET
    matching = metric_table.join(metric_name_table, metric_name.id == metric.name_id)
    extent = (
        sa.select(
            metric.name_id,
            sa.func.count().label("points"),
            sa.func.min(metric.step).label("first_step"),
            sa.func.max(metric.step).label("last_step"),
        )
        .select_from(matching)
        .where(condition)
        .group_by(metric.name_id)
        .subquery("extent")
    )
    bucket = sa.case(
        (extent.c.points <= max_points, sa.cast(metric.step, sa.BigInteger)),
        # Integer arithmetic on both databases; widened so step × buckets cannot overflow.
        else_=(sa.cast(metric.step - extent.c.first_step, sa.BigInteger) * buckets)
        // (extent.c.last_step - extent.c.first_step + 1),
    )
    return extent, bucket


def _bucket_extremes_query(condition: sa.ColumnElement[bool], max_points: int) -> sa.Select[Any]:
    """PostgreSQL: one row per bucket with its first, last, lowest and highest point, in one hash
    aggregation (no sorting): min/max over [step, value] or [value, ±step] arrays pick a point together
    with its partner (earliest step on ties, as `_downsampled_metrics_query` does)."""
    metric, metric_name = metric_table.c, metric_name_table.c
    extent, bucket = _bucket_extent(condition, max_points)
    step = sa.cast(metric.step, sa.Double)
    finite = metric.value.is_not(None)
    return (
        sa.select(
            metric_name.name,
            sa.func.min(postgresql.array([step, metric.value])).label("first"),
            sa.func.max(postgresql.array([step, metric.value])).label("last"),
            sa.func.min(postgresql.array([metric.value, step])).filter(finite).label("lowest"),
            sa.func.max(postgresql.array([metric.value, -step])).filter(finite).label("highest"),
        )
        .select_from(
            metric_table.join(metric_name_table, metric_name.id == metric.name_id).join(
                extent, extent.c.name_id == metric.name_id
            )
        )
        .where(condition)
        .group_by(metric_name.name, bucket)
    )


def _points_of_buckets(buckets: Iterable[Row[Any]]) -> list[tuple[str, int, float | None]]:
    """(name, step, value) rows, in name and step order, from `_bucket_extremes_query`'s bucket rows."""
    points: dict[tuple[str, int], float | None] = {}
    for bucket in buckets:
        name = bucket.name
        for step, value in (bucket.first, bucket.last):
            points[(name, int(step))] = value
        if bucket.lowest is not None:
            points[(name, int(bucket.lowest[1]))] = bucket.lowest[0]
            points[(name, int(-bucket.highest[1]))] = bucket.highest[0]
    return [(name, step, value) for (name, step), value in sorted(points.items())]


def _downsampled_metrics_query(condition: sa.ColumnElement[bool], max_points: int) -> sa.Select[Any]:
    """(name, step, value) rows of the matching series, each series cut to at most `max_points` (SQLite:
    window functions rank each bucket's points four ways and keep the first of each ranking)."""
    metric, metric_name = metric_table.c, metric_name_table.c
    matching = metric_table.join(metric_name_table, metric_name.id == metric.name_id)
    extent, bucket = _bucket_extent(condition, max_points)
    partition = (metric.name_id, bucket)
    ranked = (
        sa.select(
            metric_name.name,
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
        .select_from(matching.join(extent, extent.c.name_id == metric.name_id))
        .where(condition)
        .subquery("ranked")
    )
    return (
        sa.select(ranked.c.name, ranked.c.step, ranked.c.value)
        .where(
            sa.or_(
                ranked.c.from_first == 1,
                ranked.c.from_last == 1,
                ranked.c.from_lowest == 1,
                ranked.c.from_highest == 1,
            )
        )
        .order_by(ranked.c.name, ranked.c.step)
    )
