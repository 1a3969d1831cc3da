"""The store's reads for job event streams: each job's lifecycle and progress, and metric points by step.

The event stream's status history is derived from the job row rather than kept in a table of its own:
the lifecycle is `queued → running → finished`, and the row already records when each happened
(`created_at`, `started_at`, `finished_at`). A job cancelled before it started goes `queued → cancelled`.
A job taken over after a lost lease stays `running` (its `started_at` is kept), so nothing new happens in
its history.

Both reads are built for one poller serving many streams: one query for all watched jobs' rows, and one
bounded query per job for the metric steps past a cursor.
"""

from __future__ import annotations

from collections.abc import Collection

import sqlalchemy as sa

from core.store.base import StoreBase, job_table, metric_name_table, metric_table
from core.store.conversions import job_event_state, metric_steps
from core.store.interface import MAX_METRIC_STEPS_PER_READ, EventStoreInterface
from core.store.views import JobEventState, MetricStep


class EventStore(StoreBase, EventStoreInterface):
    def job_event_states(self, job_ids: Collection[str]) -> dict[str, JobEventState]:
        if not job_ids:
            return {}
        job = job_table.c
        query = sa.select(
            job.public_id,
            job.status,
            job.created_at,
            job.started_at,
            job.finished_at,
            job.progress_step,
            job.progress_steps,
            job.steps_per_second,
            job.summary,
            job.error,
        ).where(job.public_id.in_(list(job_ids)))
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return {row.public_id: job_event_state(row._mapping) for row in rows}

    def metric_steps_after(
        self, job_id: str, after_step: int, max_steps: int = MAX_METRIC_STEPS_PER_READ
    ) -> list[MetricStep]:
        metric, metric_name = metric_table.c, metric_name_table.c
        with self._engine.connect() as connection:
            row_id = self._job_row_id(connection, job_id)
            next_steps = (
                sa.select(metric.step)
                .where(metric.job_id == row_id, metric.step > after_step)
                .group_by(metric.step)
                .order_by(metric.step)
                .limit(max_steps)
            )
            query = (
                sa.select(metric.step, metric_name.name, metric.value)
                .join(metric_name_table, metric_name.id == metric.name_id)
                .where(metric.job_id == row_id, metric.step.in_(next_steps.scalar_subquery()))
                .order_by(metric.step, metric_name.name)
            )
            rows = connection.execute(query).all()
        return metric_steps(rows)
