"""Jobs as the API sees them: create, mark published, read, list newest first, cancel."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
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
    def create_job(self, spec: JobSpec) -> JobView:
        values = queued_job_values(spec)
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
        crash right after, the job merely looks unpublished, and the republisher publishes it again (a second
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
