"""What every part of the store shares: the tables, the engine, clock expressions, id lookups, the
batch-write primitive, the select behind every job record, and pagination cursors."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from core.db.engine import create_database_engine
from core.db.tables import (
    Checkpoint,
    FusedCheckpoint,
    FusedGroup,
    FusedGroupJob,
    Job,
    Landscape,
    Metric,
    MetricName,
    MetricRollup,
    Sweep,
    Telemetry,
    Worker,
)
from core.db.types import UtcDateTime
from core.store.conversions import job_view
from core.store.interface import DatabaseInterface
from core.store.views import InvalidCursor, JobNotFound, JobView

# The ORM's tables as SQLAlchemy Core tables: the store writes Core statements.
job_table: sa.Table = Job.__table__  # type: ignore[assignment]
sweep_table: sa.Table = Sweep.__table__  # type: ignore[assignment]
fused_group_table: sa.Table = FusedGroup.__table__  # type: ignore[assignment]
fused_group_job_table: sa.Table = FusedGroupJob.__table__  # type: ignore[assignment]
checkpoint_table: sa.Table = Checkpoint.__table__  # type: ignore[assignment]
fused_checkpoint_table: sa.Table = FusedCheckpoint.__table__  # type: ignore[assignment]
metric_table: sa.Table = Metric.__table__  # type: ignore[assignment]
metric_name_table: sa.Table = MetricName.__table__  # type: ignore[assignment]
rollup_table: sa.Table = MetricRollup.__table__  # type: ignore[assignment]
telemetry_table: sa.Table = Telemetry.__table__  # type: ignore[assignment]
landscape_table: sa.Table = Landscape.__table__  # type: ignore[assignment]
worker_table: sa.Table = Worker.__table__  # type: ignore[assignment]

_CURSOR_PREFIX = "r1:"
_MAX_ROW_ID = 2**63 - 1  # row ids are bigints


def leased_to(owner: str) -> sa.ColumnElement[bool]:
    """Job rows still running under `owner`'s lease: no other worker took them over, none finished them."""
    return sa.and_(job_table.c.lease_owner == owner, job_table.c.status == "running")


def encode_cursor(row_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise InvalidCursor("invalid cursor") from error
    digits = decoded[len(_CURSOR_PREFIX) :]
    # ASCII digits only ("²" is a digit to isdigit(), not to int()), and a row id a bigint column holds.
    if not decoded.startswith(_CURSOR_PREFIX) or not (digits.isascii() and digits.isdigit()):
        raise InvalidCursor("invalid cursor")
    row_id = int(digits)
    if row_id > _MAX_ROW_ID:
        raise InvalidCursor("invalid cursor")
    return row_id


class StoreBase(DatabaseInterface):
    """Owns the engine. PostgreSQL lease times use the database clock, SQLite the process clock."""

    def __init__(self, url: str, statement_timeout_seconds: float = 0, **engine_options: Any) -> None:
        self.url = url
        self._engine: Engine = create_database_engine(url, statement_timeout_seconds, **engine_options)
        self.is_postgres = self._engine.dialect.name == "postgresql"
        # Public ids and metric names never change once written, so their integer keys are cached.
        self._job_row_ids: dict[str, int] = {}
        self._metric_name_ids: dict[str, int] = {}

    @property
    def engine(self) -> Engine:
        return self._engine

    def ping(self) -> None:
        """Reads the job table, not `SELECT 1`: an empty SQLite file answers `SELECT 1` but cannot serve
        a job."""
        with self._engine.connect() as connection:
            connection.execute(sa.select(Job.id).limit(0))

    def dispose(self) -> None:
        self._engine.dispose()

    def _autocommit(self) -> Connection:
        """A connection on which each statement is its own transaction on PostgreSQL: one round trip for a
        lone statement, with no BEGIN and COMMIT (or ROLLBACK) around it. On SQLite, a plain connection (its
        transactions cost no round trip): commit what it wrote."""
        if self.is_postgres:
            return self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._engine.connect()

    # -- clock -------------------------------------------------------------------------------------
    def _now(self) -> sa.ColumnElement[datetime]:
        if self.is_postgres:
            return sa.func.clock_timestamp(type_=UtcDateTime())
        return sa.literal(datetime.now(UTC), UtcDateTime())

    def _seconds_ago(self, seconds: float) -> sa.ColumnElement[datetime]:
        if self.is_postgres:
            return sa.func.clock_timestamp(type_=UtcDateTime()) - sa.literal(
                timedelta(seconds=seconds), sa.Interval()
            )
        return sa.literal(datetime.now(UTC) - timedelta(seconds=seconds), UtcDateTime())

    # -- ids -----------------------------------------------------------------------------------------
    def _job_row_id(self, connection: Connection, job_id: str) -> int:
        row_id = self._job_row_ids.get(job_id)
        if row_id is None:
            row_id = connection.scalar(sa.select(job_table.c.id).where(job_table.c.public_id == job_id))
            if row_id is None:
                raise JobNotFound(job_id)
            self._job_row_ids[job_id] = row_id
        return row_id

    def _job_row_ids_of(self, connection: Connection, job_ids: Sequence[str]) -> dict[str, int]:
        """{job id: row id}, the ones not cached yet looked up in one query."""
        missing = sorted(set(job_ids) - self._job_row_ids.keys())
        if missing:
            job = job_table.c
            rows = connection.execute(sa.select(job.public_id, job.id).where(job.public_id.in_(missing)))
            self._job_row_ids.update({public_id: row_id for public_id, row_id in rows})
        for job_id in job_ids:
            if job_id not in self._job_row_ids:
                raise JobNotFound(job_id)
        return {job_id: self._job_row_ids[job_id] for job_id in job_ids}

    # -- the batch-write primitive ---------------------------------------------------------------------
    def _upsert(
        self,
        connection: Connection,
        table: sa.Table,
        rows: list[dict[str, Any]],
        key_columns: list[str],
        extra_values: Mapping[str, Any] | None = None,
    ) -> None:
        """Insert `rows` in one executemany; a row whose key exists overwrites the stored values.

        Rows must have distinct keys (PostgreSQL refuses to update one row twice in a statement).
        `extra_values` are SQL expressions set on every row (e.g. the database clock).
        """
        if not rows:
            return
        statement = (postgresql.insert if self.is_postgres else sqlite.insert)(table)
        if extra_values:
            statement = statement.values(**extra_values)
        statement = statement.on_conflict_do_update(
            index_elements=key_columns,
            set_={
                column.name: statement.excluded[column.name]
                for column in table.c
                if column.name not in key_columns
            },
        )
        connection.execute(statement, rows)

    # -- job rows --------------------------------------------------------------------------------------
    @staticmethod
    def _job_select() -> sa.Select[Any]:
        return sa.select(
            *job_table.c,
            sweep_table.c.public_id.label("sweep_public_id"),
            fused_group_table.c.public_id.label("fused_group_public_id"),
            fused_group_table.c.size.label("fused_group_size"),
        ).select_from(
            job_table.outerjoin(sweep_table, job_table.c.sweep_id == sweep_table.c.id)
            .outerjoin(fused_group_job_table, fused_group_job_table.c.job_id == job_table.c.id)
            .outerjoin(fused_group_table, fused_group_table.c.id == fused_group_job_table.c.group_id)
        )

    def _fetch_job(self, connection: Connection, job_id: str) -> JobView | None:
        row = connection.execute(self._job_select().where(job_table.c.public_id == job_id)).first()
        return None if row is None else job_view(row)
