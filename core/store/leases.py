"""The worker's side of a job: leases, heartbeats, cancel flags, progress, the final status, checkpoints.

Every transition is one conditional UPDATE (compare-and-set), so concurrent workers (and the API's
re-publisher, `core.store.republish`) can race without locks: whoever changes the row first wins, the
others see 0 rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.db.tables import TERMINAL_STATUSES
from core.results import Summary, finite_or_none
from core.store.base import (
    StoreBase,
    checkpoint_table,
    job_table,
    leased_to,
)
from core.store.conversions import summary_to_json
from core.store.interface import LeaseStoreInterface
from core.store.notifications import notify_job_changed, notify_jobs_changed
from core.store.views import LeaseResult

LOST_TOO_OFTEN = "worker lost {count} times"


class LeaseStore(StoreBase, LeaseStoreInterface):
    def acquire_lease(
        self, job_id: str, owner: str, lease_seconds: float, max_lease_losses: int = 3
    ) -> LeaseResult:
        with self._engine.begin() as connection:
            return self._take_lease(connection, job_id, owner, lease_seconds, max_lease_losses)

    def _take_lease(
        self, connection: Connection, job_id: str, owner: str, lease_seconds: float, max_lease_losses: int
    ) -> LeaseResult:
        """`acquire_lease` inside the caller's transaction."""
        job = job_table.c
        taken = {
            "status": "running",
            "lease_owner": owner,
            "heartbeat_at": self._now(),
            "attempts": job.attempts + 1,
            "started_at": sa.func.coalesce(job.started_at, self._now()),
        }
        queued = connection.execute(
            job_table.update()
            .where(job.public_id == job_id, job.status == "queued", sa.not_(job.cancel_requested))
            .values(**taken)
        )
        if queued.rowcount == 1:
            notify_job_changed(connection, job_id)  # queued → running
            return LeaseResult("acquired", self._fetch_job(connection, job_id))
        stale = sa.and_(
            job.public_id == job_id,
            job.status == "running",
            job.heartbeat_at < self._seconds_ago(lease_seconds),
        )
        taken_over = connection.execute(
            job_table.update()
            .where(stale, sa.not_(job.cancel_requested), job.lease_losses + 1 < max_lease_losses)
            .values(lease_losses=job.lease_losses + 1, **taken)
        )
        if taken_over.rowcount == 1:
            return LeaseResult("taken_over", self._fetch_job(connection, job_id))
        return self._refuse_lease(connection, job_id, stale, max_lease_losses)

    def _refuse_lease(
        self, connection: Connection, job_id: str, stale: sa.ColumnElement[bool], max_lease_losses: int
    ) -> LeaseResult:
        """Why the lease was not taken; a stale lease that may not be taken over ends the job here."""
        job = job_table.c
        cancelled = connection.execute(
            job_table.update()
            .where(stale, job.cancel_requested)
            .values(status="cancelled", finished_at=self._now(), lease_losses=job.lease_losses + 1)
        )
        if cancelled.rowcount == 1:
            notify_job_changed(connection, job_id)
            return LeaseResult("cancelled", self._fetch_job(connection, job_id))
        failed = connection.execute(
            job_table.update()
            .where(stale, job.lease_losses + 1 >= max_lease_losses)
            .values(
                status="failed",
                finished_at=self._now(),
                lease_losses=job.lease_losses + 1,
                error=LOST_TOO_OFTEN.format(count=max_lease_losses),
            )
        )
        if failed.rowcount == 1:
            notify_job_changed(connection, job_id)
            return LeaseResult("lost_too_often", self._fetch_job(connection, job_id))
        view = self._fetch_job(connection, job_id)
        if view is None:
            return LeaseResult("not_found", None)
        return LeaseResult("finished" if view.is_terminal else "fresh_lease", view)

    def heartbeat(self, job_id: str, owner: str) -> bool:
        with self._engine.begin() as connection:
            renewed = connection.execute(
                job_table.update()
                .where(job_table.c.public_id == job_id, leased_to(owner))
                .values(heartbeat_at=self._now())
            )
        return renewed.rowcount == 1

    def is_cancel_requested(self, job_id: str) -> bool:
        with self._engine.connect() as connection:
            requested = connection.scalar(
                sa.select(job_table.c.cancel_requested).where(job_table.c.public_id == job_id)
            )
        return bool(requested)

    def set_progress(
        self, job_id: str, step: int, steps: int, steps_per_second: float | None, owner: str | None = None
    ) -> None:
        """On PostgreSQL the commit does not wait for the WAL flush (`synchronous_commit off`, this
        transaction only): it is the most frequent write of a running job and the first a watcher waits
        for, and the flush costs more than the rest of the write. The change is visible at once all the
        same; a database crash may lose the last fraction of a second of progress, which the next write
        restores (a final status, written durably afterwards, flushes the progress before it as well).
        """
        condition = job_table.c.public_id == job_id
        if owner is not None:
            condition = sa.and_(condition, job_table.c.lease_owner == owner)
        with self._engine.begin() as connection:
            if self.is_postgres:
                connection.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
            written = connection.execute(
                job_table.update()
                .where(condition)
                .values(
                    progress_step=step,
                    progress_steps=steps,
                    steps_per_second=finite_or_none(steps_per_second),
                )
            )
            if written.rowcount == 1:
                notify_job_changed(connection, job_id)

    def set_group_progress(
        self, job_ids: Sequence[str], step: int, steps: int, steps_per_second: float | None, owner: str
    ) -> None:
        """`set_progress` for every one of `job_ids` still running under `owner`'s lease, in one statement
        (and one notification statement) whatever their number: a fused group's progress at a sync point."""
        if not job_ids:
            return
        job = job_table.c
        with self._engine.begin() as connection:
            if self.is_postgres:
                connection.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
            written = connection.execute(
                job_table.update()
                .where(job.public_id.in_(list(job_ids)), leased_to(owner))
                .values(
                    progress_step=step,
                    progress_steps=steps,
                    steps_per_second=finite_or_none(steps_per_second),
                )
                .returning(job.public_id)
            )
            notify_jobs_changed(connection, list(written.scalars()))

    def finish_job(
        self,
        job_id: str,
        owner: str,
        status: str,
        summary: Summary | None = None,
        error: str | None = None,
        device: str | None = None,
    ) -> bool:
        if status not in TERMINAL_STATUSES:
            raise ValueError(f"{status!r} is not a final status")
        values: dict[str, Any] = {"status": status, "finished_at": self._now(), "error": error}
        if summary is not None:
            values["summary"] = summary_to_json(summary)
        if device is not None:
            values["device"] = device
        with self._engine.begin() as connection:
            finished = connection.execute(
                job_table.update().where(job_table.c.public_id == job_id, leased_to(owner)).values(**values)
            )
            if finished.rowcount == 1:
                notify_job_changed(connection, job_id)
        return finished.rowcount == 1

    def fail_jobs_leased_by(self, job_ids: Sequence[str], owner_prefix: str, error: str) -> list[str]:
        failed = []
        with self._engine.begin() as connection:
            for job_id in job_ids:
                updated = connection.execute(
                    job_table.update()
                    .where(
                        job_table.c.public_id == job_id,
                        job_table.c.status == "running",
                        job_table.c.lease_owner.startswith(owner_prefix, autoescape=True),
                    )
                    .values(status="failed", finished_at=self._now(), error=error)
                )
                if updated.rowcount == 1:
                    notify_job_changed(connection, job_id)
                    failed.append(job_id)
        return failed

    # -- checkpoints -------------------------------------------------------------------------------------
    def save_checkpoint(self, job_id: str, step: int, blob: bytes) -> None:
        with self._engine.begin() as connection:
            row = {"job_id": self._job_row_id(connection, job_id), "step": step, "blob": blob}
            self._upsert(
                connection, checkpoint_table, [row], ["job_id"], extra_values={"saved_at": self._now()}
            )

    def load_checkpoint(self, job_id: str) -> tuple[int, bytes] | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                sa.select(checkpoint_table.c.step, checkpoint_table.c.blob).where(
                    checkpoint_table.c.job_id == self._job_row_id(connection, job_id)
                )
            ).first()
        return None if row is None else (row.step, bytes(row.blob))
