"""Looking after past work: tags, a note and the archived flag of jobs and sweeps; deleting a finished job
or sweep with every row that belongs to it.

A delete is one transaction over every table that holds a job's rows (`core.db.tables`): metrics and their
rollup (no foreign keys, so they must be named), telemetry, landscape probes, checkpoints, fused-group
memberships, the fused groups left empty and their checkpoints, then the job (and the sweep). Only finished
jobs are deleted: a worker still training one would go on writing points under its row id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.db.tables import TERMINAL_STATUSES
from core.housekeeping import tags_column
from core.store.base import (
    StoreBase,
    checkpoint_table,
    fused_checkpoint_table,
    fused_group_job_table,
    fused_group_table,
    job_table,
    landscape_table,
    metric_table,
    rollup_table,
    sweep_table,
    telemetry_table,
)
from core.store.interface_support import DeleteOutcome, HousekeepingStoreInterface
from core.store.notifications import notify_job_changed
from core.store.views import JobView

# Every table keyed by a job's row id, children before the job itself.
_JOB_CHILD_TABLES = (
    metric_table,
    rollup_table,
    telemetry_table,
    landscape_table,
    checkpoint_table,
    fused_group_job_table,
)


def _label_values(tags: Sequence[str] | None, note: str | None, archived: bool | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if tags is not None:
        values["tags"] = tags_column(tags)
    if note is not None:
        values["note"] = note
    if archived is not None:
        values["archived"] = archived
    return values


class HousekeepingStore(StoreBase, HousekeepingStoreInterface):
    def label_job(
        self,
        job_id: str,
        tags: Sequence[str] | None = None,
        note: str | None = None,
        archived: bool | None = None,
    ) -> JobView | None:
        values = _label_values(tags, note, archived)
        with self._engine.begin() as connection:
            if values:
                connection.execute(job_table.update().where(job_table.c.public_id == job_id).values(**values))
            return self._fetch_job(connection, job_id)

    def label_sweep(
        self,
        sweep_id: str,
        tags: Sequence[str] | None = None,
        note: str | None = None,
        archived: bool | None = None,
    ) -> bool:
        values = _label_values(tags, note, archived)
        with self._engine.begin() as connection:
            exists = sa.select(sweep_table.c.id).where(sweep_table.c.public_id == sweep_id)
            if connection.scalar(exists) is None:
                return False
            if values:
                connection.execute(
                    sweep_table.update().where(sweep_table.c.public_id == sweep_id).values(**values)
                )
        return True

    def delete_job(self, job_id: str) -> DeleteOutcome:
        with self._engine.begin() as connection:
            row = connection.execute(
                sa.select(job_table.c.id, job_table.c.status)
                .where(job_table.c.public_id == job_id)
                .with_for_update()
            ).first()
            if row is None:
                return "not_found"
            if row.status not in TERMINAL_STATUSES:
                return "unfinished"
            self._delete_jobs(connection, [row.id], [job_id])
        return "deleted"

    def delete_sweep(self, sweep_id: str) -> DeleteOutcome:
        with self._engine.begin() as connection:
            sweep_row_id = connection.scalar(
                sa.select(sweep_table.c.id).where(sweep_table.c.public_id == sweep_id).with_for_update()
            )
            if sweep_row_id is None:
                return "not_found"
            jobs = connection.execute(
                sa.select(job_table.c.id, job_table.c.public_id, job_table.c.status)
                .where(job_table.c.sweep_id == sweep_row_id)
                .with_for_update()
            ).all()
            if any(job.status not in TERMINAL_STATUSES for job in jobs):
                return "unfinished"
            # Its fused groups go with their last jobs.
            self._delete_jobs(connection, [job.id for job in jobs], [job.public_id for job in jobs])
            connection.execute(sweep_table.delete().where(sweep_table.c.id == sweep_row_id))
        return "deleted"

    def _delete_jobs(self, connection: Connection, row_ids: list[int], public_ids: list[str]) -> None:
        """Delete the jobs and every row keyed by them; fused groups left without a job go too. Open event
        streams of the jobs are told (they end: the job is gone)."""
        if not row_ids:
            return
        groups = sa.select(fused_group_job_table.c.group_id).where(
            fused_group_job_table.c.job_id.in_(row_ids)
        )
        group_ids = list(connection.scalars(groups.distinct()))
        for table in _JOB_CHILD_TABLES:
            connection.execute(table.delete().where(table.c.job_id.in_(row_ids)))
        if group_ids:
            still_used = sa.select(fused_group_job_table.c.group_id)
            empty = sa.and_(fused_group_table.c.id.in_(group_ids), fused_group_table.c.id.not_in(still_used))
            connection.execute(
                fused_checkpoint_table.delete().where(
                    fused_checkpoint_table.c.group_id.in_(sa.select(fused_group_table.c.id).where(empty))
                )
            )
            connection.execute(fused_group_table.delete().where(empty))
        connection.execute(job_table.delete().where(job_table.c.id.in_(row_ids)))
        for public_id in public_ids:
            self._job_row_ids.pop(public_id, None)
            notify_job_changed(connection, public_id)
