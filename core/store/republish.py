"""The API's side of lost jobs: finding queued jobs the broker never got or lost, and running jobs whose
worker died, and claiming each for publication again.

A claim is one conditional UPDATE on the columns as they were read, so the re-publishers of several API
replicas can run at once: exactly one of them publishes a job again.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from core.store.base import StoreBase, fused_group_job_table, fused_group_table, job_table
from core.store.conversions import republish_candidate
from core.store.interface import RepublishStoreInterface
from core.store.views import RepublishCandidate

REPUBLISH_BATCH = 100  # per pass of the re-publisher; the rest wait for the next pass


class RepublishStore(StoreBase, RepublishStoreInterface):
    def jobs_needing_publish(
        self, unpublished_after_seconds: float, requeue_after_seconds: float
    ) -> list[RepublishCandidate]:
        job = job_table.c
        never_published = sa.and_(
            job.enqueued_at.is_(None), job.created_at < self._seconds_ago(unpublished_after_seconds)
        )
        waiting_too_long = job.enqueued_at < self._seconds_ago(requeue_after_seconds)
        return self._candidates(sa.and_(job.status == "queued", sa.or_(never_published, waiting_too_long)))

    def stale_running_jobs(
        self, lease_seconds: float, requeue_after_seconds: float | None = None
    ) -> list[RepublishCandidate]:
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
            return [republish_candidate(row) for row in connection.execute(query)]
