"""Jobs and sweeps as the API sees them: create, read, list newest first, cancel."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.db.tables import EXECUTIONS
from core.spec import JobSpec
from core.store.base import (
    StoreBase,
    decode_cursor,
    encode_cursor,
    fused_group_job_table,
    fused_group_table,
    job_table,
    job_view,
    sweep_table,
)
from core.store.notifications import notify_job_changed
from core.store.views import FusedGroupView, JobView, SweepView


class JobStore(StoreBase):
    def _new_job_values(self, spec: JobSpec) -> dict[str, Any]:
        return {
            "public_id": uuid.uuid4().hex,
            "name": spec.name,
            "status": "queued",
            "spec": spec.model_dump(mode="json"),
            "attempts": 0,
            "lease_losses": 0,
            "cancel_requested": False,
        }

    def create_job(self, spec: JobSpec) -> JobView:
        """Commit a queued job (not yet published: `enqueued_at` is null until `mark_enqueued`)."""
        values = self._new_job_values(spec)
        with self._engine.begin() as connection:
            connection.execute(job_table.insert().values(created_at=self._now(), **values))
            view = self._fetch_job(connection, values["public_id"])
        assert view is not None
        return view

    def mark_enqueued(self, job_id: str) -> None:
        """Record that the job reached the broker.

        While it is queued, or when a fast worker already took it (on Redis the lease is often taken before
        the publisher gets here): the first publication time is kept either way.

        On PostgreSQL the commit does not wait for the disk (one flush less per submit): should the server
        crash right after, the job merely looks unpublished, and the sweeper publishes it again (a second
        delivery is dropped by the lease). The job itself was committed durably before it was published.
        """
        with self._engine.begin() as connection:
            if self.is_postgres:
                connection.execute(sa.text("SET LOCAL synchronous_commit TO OFF"))
            connection.execute(
                job_table.update()
                .where(
                    job_table.c.public_id == job_id,
                    sa.or_(job_table.c.status == "queued", job_table.c.enqueued_at.is_(None)),
                )
                .values(enqueued_at=self._now())
            )

    def get_job(self, job_id: str) -> JobView | None:
        with self._engine.connect() as connection:
            return self._fetch_job(connection, job_id)

    def get_jobs(self, job_ids: Sequence[str]) -> dict[str, JobView]:
        """The jobs of those ids that exist, by id, in one query."""
        if not job_ids:
            return {}
        query = self._job_select().where(job_table.c.public_id.in_(sorted(set(job_ids))))
        with self._engine.connect() as connection:
            return {view.id: view for view in map(job_view, connection.execute(query))}

    def list_jobs(
        self,
        status: str | None = None,
        sweep_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[JobView], str | None]:
        """A page of jobs, newest first, and the cursor of the next page (None on the last one).

        Raises `InvalidCursor` for a cursor this store did not hand out.
        """
        query = self._job_select().order_by(job_table.c.id.desc()).limit(limit + 1)
        if status is not None:
            query = query.where(job_table.c.status == status)
        if sweep_id is not None:
            query = query.where(sweep_table.c.public_id == sweep_id)
        if cursor is not None:
            query = query.where(job_table.c.id < decode_cursor(cursor))
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
        return [job_view(row) for row in rows[:limit]], next_cursor

    def request_cancel(self, job_id: str) -> JobView | None:
        """Queued → cancelled at once; running → `cancel_requested` (the worker stops it); a finished job
        is left as it is (the caller answers with a conflict). None when the job does not exist."""
        with self._engine.begin() as connection:
            cancelled = connection.execute(
                job_table.update()
                .where(job_table.c.public_id == job_id, job_table.c.status == "queued")
                .values(status="cancelled", cancel_requested=True, finished_at=self._now())
            )
            if cancelled.rowcount == 1:
                notify_job_changed(connection, job_id)
            else:
                connection.execute(
                    job_table.update()
                    .where(job_table.c.public_id == job_id, job_table.c.status == "running")
                    .values(cancel_requested=True)
                )
            return self._fetch_job(connection, job_id)


class SweepStore(JobStore):
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
        """Commit the sweep, all its (queued, unpublished) jobs and its fused groups in one transaction.

        `fused_groups` lists, per group, the indices into `specs` of the jobs one task trains together (at
        least two each, no job in two groups); those jobs are executed `fused`, every other one `separate`.
        """
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
                    **self._new_job_values(spec),
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

    def list_sweeps(self, limit: int = 50, cursor: str | None = None) -> tuple[list[SweepView], str | None]:
        """A page of sweeps, newest first, and the cursor of the next page (None on the last one)."""
        condition: sa.ColumnElement[bool] = sa.true()
        if cursor is not None:
            condition = sweep_table.c.id < decode_cursor(cursor)
        with self._engine.connect() as connection:
            found = self._fetch_sweeps(connection, condition, limit=limit + 1)
        next_cursor = encode_cursor(found[limit - 1][0]) if len(found) > limit else None
        return [view for _, view in found[:limit]], next_cursor

    def sweep_jobs(self, sweep_id: str) -> list[JobView]:
        """Every job of the sweep in creation order."""
        query = self._job_select().where(sweep_table.c.public_id == sweep_id).order_by(job_table.c.id.asc())
        with self._engine.connect() as connection:
            return [job_view(row) for row in connection.execute(query)]

    def _fetch_sweeps(
        self, connection: Connection, condition: sa.ColumnElement[bool], limit: int | None = None
    ) -> list[tuple[int, SweepView]]:
        """(row id, sweep) for the sweeps matching `condition`, newest first, each with its job ids, their
        statuses, and its fused groups."""
        sweeps = connection.execute(
            sa.select(sweep_table).where(condition).order_by(sweep_table.c.id.desc()).limit(limit)
        ).all()
        job_ids: dict[int, list[str]] = {sweep.id: [] for sweep in sweeps}
        job_statuses: dict[int, dict[str, str]] = {sweep.id: {} for sweep in sweeps}
        groups: dict[int, dict[str, FusedGroupView]] = {sweep.id: {} for sweep in sweeps}
        if sweeps:
            for sweep_row_id, public_id, status in connection.execute(
                sa.select(job_table.c.sweep_id, job_table.c.public_id, job_table.c.status)
                .where(job_table.c.sweep_id.in_(list(job_ids)))
                .order_by(job_table.c.id.asc())
            ):
                job_ids[sweep_row_id].append(public_id)
                job_statuses[sweep_row_id][public_id] = status
            for member in connection.execute(self._group_members_select(list(groups))):
                group = groups[member.sweep_id].setdefault(
                    member.group_public_id, FusedGroupView(member.group_public_id, member.size, [])
                )
                group.job_ids.append(member.job_public_id)
        return [
            (
                sweep.id,
                SweepView(
                    id=sweep.public_id,
                    name=sweep.name,
                    base=sweep.base,
                    grid=sweep.grid,
                    seeds=list(sweep.seeds),
                    execution=sweep.execution,
                    size=sweep.size,
                    created_at=sweep.created_at,
                    job_ids=job_ids[sweep.id],
                    fused_groups=list(groups[sweep.id].values()),
                    job_statuses=job_statuses[sweep.id],
                ),
            )
            for sweep in sweeps
        ]

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
