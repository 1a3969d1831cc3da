"""Where a stored series first met a target, found in SQL at full resolution.

A comparison reads its series downsampled; the crossing step must not be. One indexed query per job
(the metric key starts with job and name, so the scan stays within that one series).
"""

from __future__ import annotations

import sqlalchemy as sa

from core.store.base import StoreBase
from core.store.series import metric_name_table, metric_table


class TargetStore(StoreBase):
    def first_step_meeting(
        self, job_id: str, name: str, target: float, higher_is_better: bool
    ) -> tuple[int, float] | None:
        """(step, value) of the first point of series `name` whose value is ≥ target (≤ for a metric that
        improves downwards, a loss), or None when it never did. Non-finite values (NULL) never count."""
        metric, metric_name = metric_table.c, metric_name_table.c
        meets = metric.value >= target if higher_is_better else metric.value <= target
        with self._engine.connect() as connection:
            query = (
                sa.select(metric.step, metric.value)
                .join(metric_name_table, metric_name.id == metric.name_id)
                .where(metric.job_id == self._job_row_id(connection, job_id), metric_name.name == name, meets)
                .order_by(metric.step.asc())
                .limit(1)
            )
            row = connection.execute(query).first()
        return None if row is None else (int(row.step), float(row.value))
