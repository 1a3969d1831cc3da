"""The worker's and the sweeper's side of a fused group: one lease over all its jobs, one heartbeat for all
of them, their cancel flags in one read, the group's checkpoint, and the group's jobs for re-publication.

A group is trained by one task, so its jobs are leased together: all of them in one transaction, or none
when another worker holds a fresh lease on any of them. Their heartbeats are one UPDATE, so they go stale
together and the next delivery takes them over together; a group is never split between two workers.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from core.store.base import (
    fused_checkpoint_table,
    fused_group_job_table,
    fused_group_table,
    job_table,
    leased_to,
)
from core.store.interface import FusedGroupStoreInterface
from core.store.leases import LeaseStore
from core.store.views import GroupLease, JobNotFound


class FusedGroupStore(LeaseStore, FusedGroupStoreInterface):
    def acquire_group_lease(
        self, job_ids: Sequence[str], owner: str, lease_seconds: float, max_lease_losses: int = 3
    ) -> GroupLease:
        """Each lease is taken as `acquire_lease` takes one; the first fresh lease rolls all back."""
        with self._engine.connect() as connection:
            transaction = connection.begin()
            leases = []
            for job_id in job_ids:
                lease = self._take_lease(connection, job_id, owner, lease_seconds, max_lease_losses)
                if lease.outcome == "fresh_lease":
                    transaction.rollback()
                    return GroupLease([], held_elsewhere=True)
                leases.append(lease)
            transaction.commit()
        return GroupLease(leases)

    def heartbeat_jobs(self, job_ids: Sequence[str], owner: str) -> int:
        """One UPDATE for all of them, so they go stale together."""
        job = job_table.c
        with self._engine.begin() as connection:
            renewed = connection.execute(
                job_table.update()
                .where(job.public_id.in_(list(job_ids)), leased_to(owner))
                .values(heartbeat_at=self._now())
            )
        return renewed.rowcount

    def cancel_requested_among(self, job_ids: Sequence[str]) -> set[str]:
        job = job_table.c
        with self._engine.connect() as connection:
            return set(
                connection.scalars(
                    sa.select(job.public_id).where(job.public_id.in_(list(job_ids)), job.cancel_requested)
                )
            )

    def fused_group_job_ids(self, group_id: str) -> list[str]:
        member = fused_group_job_table.c
        query = (
            sa.select(job_table.c.public_id)
            .select_from(
                fused_group_job_table.join(job_table, job_table.c.id == member.job_id).join(
                    fused_group_table, fused_group_table.c.id == member.group_id
                )
            )
            .where(fused_group_table.c.public_id == group_id)
            .order_by(member.job_id.asc())
        )
        with self._engine.connect() as connection:
            return list(connection.scalars(query))

    # -- the group's checkpoint --------------------------------------------------------------------------
    def save_group_checkpoint(self, group_id: str, step: int, blob: bytes) -> None:
        with self._engine.begin() as connection:
            row = {"group_id": self._group_row_id(connection, group_id), "step": step, "blob": blob}
            self._upsert(
                connection,
                fused_checkpoint_table,
                [row],
                ["group_id"],
                extra_values={"saved_at": self._now()},
            )

    def load_group_checkpoint(self, group_id: str) -> tuple[int, bytes] | None:
        checkpoint = fused_checkpoint_table.c
        with self._engine.connect() as connection:
            row = connection.execute(
                sa.select(checkpoint.step, checkpoint.blob).where(
                    checkpoint.group_id == self._group_row_id(connection, group_id)
                )
            ).first()
        return None if row is None else (row.step, bytes(row.blob))

    def _group_row_id(self, connection: sa.Connection, group_id: str) -> int:
        row_id = connection.scalar(
            sa.select(fused_group_table.c.id).where(fused_group_table.c.public_id == group_id)
        )
        if row_id is None:
            raise JobNotFound(f"fused group {group_id}")
        return int(row_id)
