"""What an operator scrapes (`GET /metrics`): jobs counted by status and device, and the training rate, each
one grouped query however many jobs there are."""

from __future__ import annotations

import sqlalchemy as sa

from core.store.base import StoreBase, job_table
from core.store.interface_support import OperationsStoreInterface
from core.store.views import JobCount


class OperationsStore(StoreBase, OperationsStoreInterface):
    def job_counts(self) -> list[JobCount]:
        device = job_table.c.spec["device"].as_string()
        query = sa.select(job_table.c.status, device, sa.func.count()).group_by(job_table.c.status, device)
        with self._engine.connect() as connection:
            return [
                JobCount(status, device or "auto", count)
                for status, device, count in connection.execute(query)
            ]

    def training_model_steps_per_second(self) -> float:
        query = sa.select(sa.func.coalesce(sa.func.sum(job_table.c.steps_per_second), 0.0)).where(
            job_table.c.status == "running"
        )
        with self._engine.connect() as connection:
            return float(connection.execute(query).scalar_one())
