"""The worker's and the sweeper's side of a job: leases, heartbeats, progress, checkpoints, the final
status, and finding jobs to publish again.

Every transition is one conditional UPDATE (compare-and-set), so concurrent workers and several API
replicas' sweepers can race without locks: whoever changes the row first wins, the others see 0 rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.db.tables import TERMINAL_STATUSES, Checkpoint
from core.results import Summary, finite_or_none
from core.store.base import (
    StoreBase,
    fused_group_job_table,
    fused_group_table,
    job_table,
    leased_to,
    summary_to_json,
)
from core.store.notifications import notify_job_changed
from core.store.views import LeaseResult, RepublishCandidate

checkpoint_table: sa.Table = Checkpoint.__table__  # type: ignore[assignment]

LOST_TOO_OFTEN = "worker lost {count} times"
REPUBLISH_BATCH = 100  # per sweep; the rest wait for the next one


class LeaseStore(StoreBase):
    def acquire_lease(
        self, job_id: str, owner: str, lease_seconds: float, max_lease_losses: int = 3
    ) -> LeaseResult:
        """Take the job for `owner`: when it is queued, or running under a lease whose heartbeat is older
        than `lease_seconds` (a dead worker: counted as a lease loss; the `max_lease_losses`-th loss fails
        the job instead). Refused while another lease is fresh or when the job is finished. Taking the
        lease sets status running, counts an attempt and starts the heartbeat."""
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
        """Renew `owner`'s lease; False when the lease is no longer theirs (stop training)."""
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
        """Overwrite the job's one progress row (only while `owner` holds the lease, when given).

        On PostgreSQL the commit does not wait for the WAL flush (`synchronous_commit off`, this
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

    def finish_job(
        self,
        job_id: str,
        owner: str,
        status: str,
        summary: Summary | None = None,
        error: str | None = None,
        device: str | None = None,
    ) -> bool:
        """Set the final status, if `owner` still holds the lease of the running job (False otherwise)."""
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

    # -- checkpoints -------------------------------------------------------------------------------------
    def fail_jobs_leased_by(self, job_ids: Sequence[str], owner_prefix: str, error: str) -> list[str]:
        """Fail those of `job_ids` still running under a lease whose owner begins with `owner_prefix` (every
        delivery of one process, as when that process was killed); the ids failed."""
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

    def save_checkpoint(self, job_id: str, step: int, blob: bytes) -> None:
        """Keep `blob` as the job's latest checkpoint (replacing the previous one)."""
        with self._engine.begin() as connection:
            row = {"job_id": self._job_row_id(connection, job_id), "step": step, "blob": blob}
            self._upsert(
                connection, checkpoint_table, [row], ["job_id"], extra_values={"saved_at": self._now()}
            )

    def load_checkpoint(self, job_id: str) -> tuple[int, bytes] | None:
        """(step, blob) of the job's latest checkpoint, or None."""
        with self._engine.connect() as connection:
            row = connection.execute(
                sa.select(checkpoint_table.c.step, checkpoint_table.c.blob).where(
                    checkpoint_table.c.job_id == self._job_row_id(connection, job_id)
                )
            ).first()
        return None if row is None else (row.step, bytes(row.blob))

    # -- the sweeper ---------------------------------------------------------------------------------------
    def jobs_needing_publish(
        self, unpublished_after_seconds: float, requeue_after_seconds: float
    ) -> list[RepublishCandidate]:
        """Queued jobs never published `unpublished_after_seconds` after creation (the broker was down),
        or published longer than `requeue_after_seconds` ago and still waiting (the message was lost)."""
        job = job_table.c
        never_published = sa.and_(
            job.enqueued_at.is_(None), job.created_at < self._seconds_ago(unpublished_after_seconds)
        )
        waiting_too_long = job.enqueued_at < self._seconds_ago(requeue_after_seconds)
        return self._candidates(sa.and_(job.status == "queued", sa.or_(never_published, waiting_too_long)))

    def stale_running_jobs(
        self, lease_seconds: float, requeue_after_seconds: float | None = None
    ) -> list[RepublishCandidate]:
        """Running jobs whose heartbeat is older than `lease_seconds` (their worker died) and that were not
        published again since (or, with `requeue_after_seconds`, whose republication is that old)."""
        job = job_table.c
        not_republished = sa.or_(
            job.enqueued_at.is_(None),
            job.enqueued_at < job.heartbeat_at,
            sa.not_(self._republished_after_going_stale(lease_seconds)),
        )
        if requeue_after_seconds is not None:
            not_republished = sa.or_(
                not_republished, job.enqueued_at < self._seconds_ago(requeue_after_seconds)
            )
        return self._candidates(
            sa.and_(
                job.status == "running", job.heartbeat_at < self._seconds_ago(lease_seconds), not_republished
            )
        )

    def _republished_after_going_stale(self, lease_seconds: float) -> sa.ColumnElement[bool]:
        """Whether the job's last publication came `lease_seconds` or more after its last heartbeat, as a
        sweeper's claim on the lost lease does. A publication stamped sooner after the heartbeat is the
        job's first one: the submit path records it after publishing, often after a fast worker already
        took the lease, and a worker that dies before its first heartbeat must still be found."""
        job = job_table.c
        if self.is_postgres:
            return job.enqueued_at >= job.heartbeat_at + sa.literal(
                timedelta(seconds=lease_seconds), sa.Interval()
            )
        # SQLite keeps timestamps as text; julianday() reads them as days, to the millisecond (finer than
        # any lease; the exact text comparison above decides what happened within one millisecond).
        return (
            sa.func.julianday(job.enqueued_at) >= sa.func.julianday(job.heartbeat_at) + lease_seconds / 86_400
        )

    def claim_republish(self, candidate: RepublishCandidate) -> bool:
        """Mark the candidate as published now, if its row is still exactly as read; True means this
        caller (and no other sweeper) publishes it."""
        job = job_table.c
        with self._engine.begin() as connection:
            claimed = connection.execute(
                job_table.update()
                .where(
                    job.public_id == candidate.job_id,
                    job.status == candidate.status,
                    job.enqueued_at.is_not_distinct_from(candidate.enqueued_at),
                    job.heartbeat_at.is_not_distinct_from(candidate.heartbeat_at),
                )
                .values(enqueued_at=self._now())
            )
        return claimed.rowcount == 1

    def release_republish(self, candidate: RepublishCandidate) -> None:
        """Undo a claim whose publication failed (broker down), so the next sweep finds the job again."""
        job = job_table.c
        with self._engine.begin() as connection:
            connection.execute(
                job_table.update()
                .where(
                    job.public_id == candidate.job_id,
                    job.status == candidate.status,
                    job.heartbeat_at.is_not_distinct_from(candidate.heartbeat_at),
                )
                .values(enqueued_at=candidate.enqueued_at)
            )

    def _candidates(self, condition: sa.ColumnElement[bool]) -> list[RepublishCandidate]:
        job = job_table.c
        query = (
            sa.select(
                job.public_id,
                job.spec,
                job.status,
                job.enqueued_at,
                job.heartbeat_at,
                fused_group_table.c.public_id.label("fused_group"),
            )
            .select_from(
                job_table.outerjoin(
                    fused_group_job_table, fused_group_job_table.c.job_id == job.id
                ).outerjoin(fused_group_table, fused_group_table.c.id == fused_group_job_table.c.group_id)
            )
            .where(condition)
            .order_by(job.id.asc())
            .limit(REPUBLISH_BATCH)
        )
        with self._engine.connect() as connection:
            return [
                RepublishCandidate(
                    job_id=row.public_id,
                    device=row.spec.get("device", "auto"),
                    status=row.status,
                    enqueued_at=row.enqueued_at,
                    heartbeat_at=row.heartbeat_at,
                    fused_group=row.fused_group,
                )
                for row in connection.execute(query)
            ]
