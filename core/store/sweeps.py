"""Sweeps as the API sees them: create one with all its jobs and fused groups in one transaction, read it
with its jobs' ids and statuses, list sweeps newest first, list a sweep's jobs."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.db.tables import EXECUTIONS, TERMINAL_STATUSES
from core.housekeeping import tag_pattern
from core.spec import JobSpec
from core.store.base import (
    StoreBase,
    decode_cursor,
    encode_cursor,
    fused_group_job_table,
    fused_group_table,
    job_table,
    sweep_table,
)
from core.store.conversions import job_view, sweep_views
from core.store.interface import SweepStoreInterface
from core.store.jobs import queued_job_values
from core.store.views import JobView, SweepProgress, SweepView


class SweepStore(StoreBase, SweepStoreInterface):
    def create_sweep(
        self,
        name: str,
        base: JobSpec,
        grid: Mapping[str, Sequence[Any]],
        seeds: Sequence[int],
        execution: str,
        specs: Sequence[JobSpec],
        fused_groups: Sequence[Sequence[int]] = (),
    ) -> SweepView:
        if execution not in EXECUTIONS:
            raise ValueError(f"execution must be one of {', '.join(EXECUTIONS)}")
        grouped = [index for group in fused_groups for index in group]
        if len(set(grouped)) < len(grouped) or not all(0 <= index < len(specs) for index in grouped):
            raise ValueError("fused groups must name distinct jobs of the sweep")
        if any(len(group) < 2 for group in fused_groups):
            raise ValueError("a fused group holds at least two jobs")
        in_group = set(grouped)
        public_id = uuid.uuid4().hex
        with self._engine.begin() as connection:
            inserted = connection.execute(
                sweep_table.insert().values(
                    public_id=public_id,
                    name=name,
                    base=base.model_dump(mode="json"),
                    grid={key: list(values) for key, values in grid.items()},
                    seeds=list(seeds),
                    execution=execution,
                    size=len(specs),
                    created_at=self._now(),
                )
            )
            assert inserted.inserted_primary_key is not None
            sweep_row_id = inserted.inserted_primary_key[0]
            jobs = [
                {
                    **queued_job_values(spec),
                    "sweep_id": sweep_row_id,
                    "execution": "fused" if index in in_group else "separate",
                }
                for index, spec in enumerate(specs)
            ]
            if jobs:
                connection.execute(job_table.insert().values(created_at=self._now()), jobs)
            if fused_groups:
                job_ids = [job["public_id"] for job in jobs]
                self._insert_fused_groups(connection, sweep_row_id, job_ids, fused_groups)
            [(_, view)] = self._fetch_sweeps(connection, sweep_table.c.id == sweep_row_id)
        return view

    def _insert_fused_groups(
        self,
        connection: Connection,
        sweep_row_id: int,
        job_ids: list[str],
        fused_groups: Sequence[Sequence[int]],
    ) -> None:
        """One `fused_group` row per group and its jobs' memberships (indices into `job_ids`)."""
        row_ids = dict(
            connection.execute(
                sa.select(job_table.c.public_id, job_table.c.id).where(job_table.c.sweep_id == sweep_row_id)
            ).all()
        )
        for group in fused_groups:
            inserted = connection.execute(
                fused_group_table.insert().values(
                    public_id=uuid.uuid4().hex, sweep_id=sweep_row_id, size=len(group), created_at=self._now()
                )
            )
            assert inserted.inserted_primary_key is not None
            group_row_id = inserted.inserted_primary_key[0]
            connection.execute(
                fused_group_job_table.insert(),
                [{"job_id": row_ids[job_ids[index]], "group_id": group_row_id} for index in group],
            )

    def get_sweep(self, sweep_id: str) -> SweepView | None:
        with self._engine.connect() as connection:
            found = self._fetch_sweeps(connection, sweep_table.c.public_id == sweep_id)
        return found[0][1] if found else None

    def list_sweeps(
        self,
        limit: int = 50,
        cursor: str | None = None,
        tag: str | None = None,
        archived: bool | None = False,
    ) -> tuple[list[SweepView], str | None]:
        conditions: list[sa.ColumnElement[bool]] = []
        if cursor is not None:
            conditions.append(sweep_table.c.id < decode_cursor(cursor))
        if tag is not None:
            conditions.append(sweep_table.c.tags.contains(tag_pattern(tag), autoescape=True))
        if archived is not None:
            conditions.append(sweep_table.c.archived == archived)
        condition = sa.and_(sa.true(), *conditions)
        with self._engine.connect() as connection:
            found = self._fetch_sweeps(connection, condition, limit=limit + 1)
        next_cursor = encode_cursor(found[limit - 1][0]) if len(found) > limit else None
        return [view for _, view in found[:limit]], next_cursor

    def sweep_jobs(self, sweep_id: str) -> list[JobView]:
        query = self._job_select().where(sweep_table.c.public_id == sweep_id).order_by(job_table.c.id.asc())
        with self._engine.connect() as connection:
            return [job_view(row) for row in connection.execute(query)]

    def sweep_progress(self, sweep_id: str) -> SweepProgress:
        job = job_table.c
        budget = job.spec["steps"].as_integer()
        finished = job.status.in_(sorted(TERMINAL_STATUSES))
        step_run = sa.func.coalesce(job.progress_step, 0)
        query = (
            sa.select(
                sa.func.coalesce(sa.func.sum(sa.case((finished, budget), else_=step_run)), 0),
                sa.func.coalesce(sa.func.sum(budget), 0),
                sa.func.coalesce(
                    sa.func.sum(sa.case((job.status == "running", job.steps_per_second), else_=0.0)), 0.0
                ),
            )
            .select_from(job_table.join(sweep_table, sweep_table.c.id == job.sweep_id))
            .where(sweep_table.c.public_id == sweep_id)
        )
        with self._engine.connect() as connection:
            steps_done, steps_total, rate = connection.execute(query).one()
        return SweepProgress(
            steps_done=int(steps_done), steps_total=int(steps_total), model_steps_per_second=float(rate)
        )

    def _fetch_sweeps(
        self, connection: Connection, condition: sa.ColumnElement[bool], limit: int | None = None
    ) -> list[tuple[int, SweepView]]:
        """(row id, sweep) for the sweeps matching `condition`, newest first, each with its job ids, their
        statuses, and its fused groups."""
        sweeps = connection.execute(
            sa.select(sweep_table).where(condition).order_by(sweep_table.c.id.desc()).limit(limit)
        ).all()
        if not sweeps:
            return []
        sweep_row_ids = [sweep.id for sweep in sweeps]
        jobs = connection.execute(
            sa.select(job_table.c.sweep_id, job_table.c.public_id, job_table.c.status)
            .where(job_table.c.sweep_id.in_(sweep_row_ids))
            .order_by(job_table.c.id.asc())
        ).all()
        group_members = connection.execute(self._group_members_select(sweep_row_ids)).all()
        return sweep_views(sweeps, jobs, group_members)

    @staticmethod
    def _group_members_select(sweep_row_ids: list[int]) -> sa.Select[Any]:
        """Every job of the sweeps' fused groups, group by group, each group's jobs in training order."""
        group, member = fused_group_table.c, fused_group_job_table.c
        return (
            sa.select(
                group.sweep_id,
                group.public_id.label("group_public_id"),
                group.size,
                job_table.c.public_id.label("job_public_id"),
            )
            .select_from(
                fused_group_table.join(fused_group_job_table, member.group_id == group.id).join(
                    job_table, job_table.c.id == member.job_id
                )
            )
            .where(group.sweep_id.in_(sweep_row_ids))
            .order_by(group.id.asc(), member.job_id.asc())
        )
