"""Per-step series of a job: metrics (batched idempotent upserts that keep the rollup, downsampled in SQL
from the rollup on the way out), layer telemetry and loss-landscape probes.

Non-finite values (NaN, ±inf: a diverged run) are stored as NULL and read back as None.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from core.results import LandscapeRecord, MetricPoint, TelemetryRecord, finite_or_none
from core.store.base import (
    StoreBase,
    landscape_table,
    metric_name_table,
    metric_table,
    telemetry_table,
)
from core.store.conversions import landscape_rows, landscape_view, layer_telemetry, telemetry_rows
from core.store.interface import SeriesStoreInterface
from core.store.notifications import notify_jobs_changed
from core.store.rollup import lock_jobs_metrics, refresh_blocks, step_range_per_name
from core.store.rollup_reads import (
    POINTS_PER_BUCKET,
    as_lists,
    downsampled_series,
    known_name_ids,
    stored_name_ids,
)
from core.store.views import LandscapeView, LayerFigures, LayerTelemetry, MetricSeries

# PostgreSQL path: COPY (binary) into a per-session staging table, then one INSERT … ON CONFLICT from it.
# The staging table is a session-local scratch table, not part of the schema the migrations own.
_CREATE_STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS metric_staging "
    "(job_id bigint NOT NULL, name_id smallint NOT NULL, step integer NOT NULL, value double precision) "
    "ON COMMIT DELETE ROWS"
)
_COPY_TO_STAGING = "COPY metric_staging (job_id, name_id, step, value) FROM STDIN (FORMAT BINARY)"
_UPSERT_FROM_STAGING = (
    "WITH changed AS ("
    "INSERT INTO metric (job_id, name_id, step, value) "
    "SELECT job_id, name_id, step, value FROM metric_staging "
    "ON CONFLICT (job_id, name_id, step) DO UPDATE SET value = EXCLUDED.value "
    # A redelivered job mostly rewrites identical values: leaving those rows alone writes no new versions.
    "WHERE metric.value IS DISTINCT FROM EXCLUDED.value "
    "RETURNING job_id, name_id, step) "
    # Per job and metric, the step range of what was inserted or changed: only there does the rollup change.
    "SELECT job_id, name_id, min(step), max(step) FROM changed GROUP BY job_id, name_id"
)


class SeriesStore(StoreBase, SeriesStoreInterface):
    # -- metrics ---------------------------------------------------------------------------------------
    def write_metrics(self, job_id: str, points: Sequence[MetricPoint]) -> None:
        """The same transaction recomputes the rollup blocks the batch changed: per metric, every block from
        its first to its last changed step (a worker writes contiguous stretches of steps). On PostgreSQL
        a rewrite of identical values changes nothing and recomputes nothing."""
        self.write_series_of_jobs({job_id: points})

    def write_series_of_jobs(
        self,
        metrics: Mapping[str, Sequence[MetricPoint]],
        telemetry: Mapping[str, Sequence[TelemetryRecord]] | None = None,
        landscape: Mapping[str, Sequence[LandscapeRecord]] | None = None,
    ) -> None:
        """Many jobs' metric points, telemetry and landscape records (by job id) in one transaction, with a
        number of statements that does not grow with the number of jobs (a fused group's reports of one sync
        point). Each job's points are written as `write_metrics` writes them."""
        telemetry, landscape = telemetry or {}, landscape or {}
        metrics = {job_id: points for job_id, points in metrics.items() if points}
        if not (metrics or any(telemetry.values()) or any(landscape.values())):
            return
        name_ids = self._intern_metric_names({point.name for points in metrics.values() for point in points})
        with self._engine.begin() as connection:
            row_ids = self._job_row_ids_of(connection, list({*metrics, *telemetry, *landscape}))
            if metrics:
                self._write_metric_rows(connection, metrics, name_ids, row_ids)
            telemetry_batch = [
                row
                for job_id, records in telemetry.items()
                for row in telemetry_rows(row_ids[job_id], records)
            ]
            self._upsert(connection, telemetry_table, telemetry_batch, ["job_id", "step", "layer"])
            landscape_batch = [
                row
                for job_id, records in landscape.items()
                for row in landscape_rows(row_ids[job_id], records)
            ]
            self._upsert(connection, landscape_table, landscape_batch, ["job_id", "step"])
            notify_jobs_changed(connection, list(metrics))

    def _write_metric_rows(
        self,
        connection: Connection,
        metrics: Mapping[str, Sequence[MetricPoint]],
        name_ids: Mapping[str, int],
        row_ids: Mapping[str, int],
    ) -> None:
        """Upsert the points (the last of a key within a job's batch wins) and refresh the changed blocks."""
        rows: list[tuple[int, int, int, float | None]] = []
        changed: dict[tuple[int, int], tuple[int, int]] = {}
        for job_id, points in metrics.items():
            values: dict[tuple[int, int], float | None] = {}
            for point in points:
                values[(name_ids[point.name], point.step)] = finite_or_none(point.value)
            keys = sorted(values)
            row_id = row_ids[job_id]
            rows.extend((row_id, name_id, step, values[name_id, step]) for name_id, step in keys)
            if not self.is_postgres:
                for name_id, step_range in step_range_per_name(keys).items():
                    changed[(row_id, name_id)] = step_range
        if self.is_postgres:
            lock_jobs_metrics(connection, [row_ids[job_id] for job_id in metrics])
            changed = _copy_upsert_metrics(connection, rows)
        else:
            columns = ("job_id", "name_id", "step", "value")
            self._upsert(
                connection,
                metric_table,
                [dict(zip(columns, row, strict=True)) for row in rows],
                ["job_id", "name_id", "step"],
            )
        refresh_blocks(connection, self.is_postgres, changed)

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
                known_name_ids(connection, self._metric_name_ids, missing)
        return {name: self._metric_name_ids[name] for name in names}

    def read_metrics(
        self, job_id: str, names: Sequence[str] | None = None, max_points: int = 1000
    ) -> MetricSeries:
        """Downsampled in SQL from the rollup's blocks (see `core.store.rollup_reads`), with the same
        result as from the raw points."""
        if max_points < POINTS_PER_BUCKET:
            raise ValueError(f"max_points must be at least {POINTS_PER_BUCKET}")
        series: MetricSeries = {name: ([], []) for name in names or ()}
        with self._engine.connect() as connection:
            row_id = self._job_row_id(connection, job_id)
            if names is None:
                name_ids = stored_name_ids(connection, row_id)
            else:
                name_ids = known_name_ids(connection, self._metric_name_ids, names)
            stored = downsampled_series(
                connection, self.is_postgres, [row_id], list(name_ids.values()), max_points
            )
        for name, name_id in sorted(name_ids.items()):
            series[name] = as_lists(stored.get((row_id, name_id), []))
        return series

    # -- telemetry ---------------------------------------------------------------------------------------
    def write_telemetry(self, job_id: str, records: Sequence[TelemetryRecord]) -> None:
        self.write_series_of_jobs({}, telemetry={job_id: records})

    def read_telemetry(self, job_id: str) -> list[LayerTelemetry]:
        telemetry = telemetry_table.c
        with self._engine.connect() as connection:
            rows = connection.execute(
                sa.select(telemetry_table)
                .where(telemetry.job_id == self._job_row_id(connection, job_id))
                .order_by(telemetry.layer, telemetry.step)
            ).all()
        return layer_telemetry(rows)

    def read_gradient_ics(self, job_ids: Sequence[str]) -> dict[str, list[LayerFigures]]:
        if not job_ids:
            return {}
        telemetry = telemetry_table.c
        with self._engine.connect() as connection:
            row_ids = self._job_row_ids_of(connection, job_ids)
            rows = connection.execute(
                sa.select(
                    telemetry.job_id,
                    telemetry.layer,
                    telemetry.ics_gradient_change,
                    telemetry.ics_gradient_cosine,
                )
                .where(telemetry.job_id.in_(sorted(set(row_ids.values()))))
                .order_by(telemetry.job_id, telemetry.layer, telemetry.step)
            ).all()
        per_row: dict[int, dict[int, tuple[list[float | None], list[float | None]]]] = {}
        for row_id, layer, change, cosine in rows:
            changes, cosines = per_row.setdefault(row_id, {}).setdefault(layer, ([], []))
            changes.append(finite_or_none(change))
            cosines.append(finite_or_none(cosine))
        return {
            job_id: [(layer, *figures) for layer, figures in per_row.get(row_id, {}).items()]
            for job_id, row_id in row_ids.items()
        }

    # -- landscape ---------------------------------------------------------------------------------------
    def write_landscape(self, job_id: str, records: Sequence[LandscapeRecord]) -> None:
        self.write_series_of_jobs({}, landscape={job_id: records})

    def read_landscape(self, job_id: str) -> list[LandscapeView]:
        landscape = landscape_table.c
        with self._engine.connect() as connection:
            rows = connection.execute(
                sa.select(landscape_table)
                .where(landscape.job_id == self._job_row_id(connection, job_id))
                .order_by(landscape.step)
            ).all()
        return [landscape_view(row) for row in rows]


def _copy_upsert_metrics(
    connection: Connection, rows: list[tuple[int, int, int, float | None]]
) -> dict[tuple[int, int], tuple[int, int]]:
    """PostgreSQL: binary COPY into the staging table, then one set-based upsert into `metric`. Returns,
    per (job row id, name id), the first and last step of the points it inserted or changed."""
    connection.exec_driver_sql(_CREATE_STAGING)
    driver_connection = connection.connection.driver_connection
    assert driver_connection is not None
    with driver_connection.cursor() as cursor:
        with cursor.copy(_COPY_TO_STAGING) as copy:
            copy.set_types(["int8", "int2", "int4", "float8"])
            for row in rows:
                copy.write_row(row)
        cursor.execute(_UPSERT_FROM_STAGING)
        return {(row_id, name_id): (first, last) for row_id, name_id, first, last in cursor.fetchall()}
