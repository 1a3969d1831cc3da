"""Jobs as the API sees them: create, mark published, read, list newest first, cancel.

The submit path (`create_job`, `mark_enqueued`) runs once per `POST /v1/jobs`, so its statements are built
once per store (SQLAlchemy then reuses their compiled form without building or hashing them again) and each
is one round trip on PostgreSQL: a single statement in autocommit is its own transaction, with no BEGIN
or COMMIT to wait for.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import sqlalchemy as sa

from core.housekeeping import tag_pattern
from core.spec import JobSpec
from core.store.base import (
    StoreBase,
    decode_cursor,
    encode_cursor,
    job_table,
    sweep_table,
)
from core.store.conversions import job_view
from core.store.interface import JobStoreInterface
from core.store.notifications import notify_job_changed
from core.store.views import JobView

# Jobs marked enqueued per statement: a fused group's are marked together, well inside SQLite's limit on
# bound parameters.
MARK_ENQUEUED_BATCH = 500
# A new job belongs to no sweep and no fused group: `job_view` reads these as null.
_NO_SWEEP_NOR_GROUP = (
    sa.null().label("sweep_public_id"),
    sa.null().label("fused_group_public_id"),
    sa.null().label("fused_group_size"),
)


def queued_job_values(spec: JobSpec) -> dict[str, Any]:
    """The columns of a new job row: queued, not yet published, with a fresh public id."""
    return {
        "public_id": uuid.uuid4().hex,
        "name": spec.name,
        "status": "queued",
        "spec": spec.model_dump(mode="json"),
        "attempts": 0,
        "lease_losses": 0,
        "cancel_requested": False,
    }


class JobStore(StoreBase, JobStoreInterface):
    @cached_property
    def _insert_job(self) -> sa.Insert:
        """INSERT … RETURNING the new job's columns, as `_job_select` names them (PostgreSQL stamps it with
        its clock, SQLite with the process clock, a parameter)."""
        insert = job_table.insert().returning(*job_table.c, *_NO_SWEEP_NOR_GROUP)
        return insert.values(created_at=self._now()) if self.is_postgres else insert

    @cached_property
    def _mark_enqueued(self) -> sa.Update:
        """Sets `enqueued_at` of the jobs `:job_ids` unless it was set and the job left the queue. On
        PostgreSQL the statement first sets `synchronous_commit` off for its own transaction (see
        `mark_enqueued`); on SQLite the time is a parameter."""
        job = job_table.c
        update = job_table.update().where(
            job.public_id.in_(sa.bindparam("job_ids", expanding=True)),
            sa.or_(job.status == "queued", job.enqueued_at.is_(None)),
        )
        if not self.is_postgres:
            return update.values(enqueued_at=sa.bindparam("now", type_=job.enqueued_at.type))
        local_setting = sa.func.set_config("synchronous_commit", "off", sa.true())
        async_commit = sa.select(local_setting.label("synchronous_commit")).cte("async_commit")
        return (
            update.where(sa.exists(sa.select(async_commit.c.synchronous_commit)))
            .values(enqueued_at=self._now())
            .add_cte(async_commit)
        )

    def create_job(self, spec: JobSpec) -> JobView:
        """One statement: the INSERT returns the row, committed durably before it answers."""
        values = queued_job_values(spec)
        if not self.is_postgres:
            values["created_at"] = datetime.now(UTC)
        with self._autocommit() as connection:
            row = connection.execute(self._insert_job, values).one()
            connection.commit()  # SQLite's transaction; nothing to do in PostgreSQL's autocommit
        return job_view(row)

    def mark_enqueued(self, *job_ids: str) -> None:
        """Record that the jobs reached the broker (one job's task, or the task of a fused group's jobs):
        one statement per `MARK_ENQUEUED_BATCH` jobs.

        While a job is queued, or when a fast worker already took it (on Redis the lease is often taken
        before the publisher gets here): the first publication time is kept either way.

        On PostgreSQL the commit does not wait for the disk (one flush less per submit; the statement sets
        `synchronous_commit` off for its own transaction, so this costs one round trip): should the server
        crash right after, the job merely looks unpublished, and the republisher publishes it again (a second
        delivery is dropped by the lease). The job itself was committed durably before it was published.
        """
        with self._autocommit() as connection:
            for first in range(0, len(job_ids), MARK_ENQUEUED_BATCH):
                parameters: dict[str, Any] = {"job_ids": list(job_ids[first : first + MARK_ENQUEUED_BATCH])}
                if not self.is_postgres:
                    parameters["now"] = datetime.now(UTC)
                connection.execute(self._mark_enqueued, parameters)
            connection.commit()

    def get_job(self, job_id: str) -> JobView | None:
        with self._engine.connect() as connection:
            return self._fetch_job(connection, job_id)

    def get_jobs(self, job_ids: Sequence[str]) -> dict[str, JobView]:
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
        tag: str | None = None,
        archived: bool | None = False,
    ) -> tuple[list[JobView], str | None]:
        query = self._job_select().order_by(job_table.c.id.desc()).limit(limit + 1)
        if tag is not None:
            query = query.where(job_table.c.tags.contains(tag_pattern(tag), autoescape=True))
        if archived is not None:
            # A job of an archived sweep is archived with it.
            hidden = sa.or_(job_table.c.archived, sa.func.coalesce(sweep_table.c.archived, sa.false()))
            query = query.where(hidden if archived else sa.not_(hidden))
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
