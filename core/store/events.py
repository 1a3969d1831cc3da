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
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping

from core.db.tables import TERMINAL_STATUSES
from core.results import Progress, Summary
from core.store.base import StoreBase, job_table, progress_from_row, summary_from_json
from core.store.series import metric_name_table, metric_table

MAX_METRIC_STEPS_PER_READ = 2000  # evaluation steps per job and read; a long replay takes a few reads


@dataclass(frozen=True)
class StatusChange:
    """One step of a job's lifecycle: `seq` counts from 1 (queued)."""

    seq: int
    status: str
    at: datetime | None


@dataclass(frozen=True)
class JobEventState:
    """What an event stream needs to know about a job at one moment."""

    id: str
    status: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress: Progress | None
    summary: Summary | None
    error: str | None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def has_started(self) -> bool:
        return self.started_at is not None

    def status_history(self) -> list[StatusChange]:
        """queued, then running once a worker took it, then the final status once it has one."""
        changes: list[tuple[str, datetime | None]] = [("queued", self.created_at)]
        if self.started_at is not None:
            changes.append(("running", self.started_at))
        if self.is_terminal:
            changes.append((self.status, self.finished_at))
        return [StatusChange(seq, status, at) for seq, (status, at) in enumerate(changes, start=1)]


@dataclass(frozen=True)
class MetricStep:
    """Every metric recorded at one evaluation step (None for a value that was not finite)."""

    step: int
    values: dict[str, float | None]


class EventStore(StoreBase):
    def job_event_states(self, job_ids: Collection[str]) -> dict[str, JobEventState]:
        """The current state of each job that exists, by public id, in one query."""
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
        return {row.public_id: _event_state(row._mapping) for row in rows}

    def metric_steps_after(
        self, job_id: str, after_step: int, max_steps: int = MAX_METRIC_STEPS_PER_READ
    ) -> list[MetricStep]:
        """The job's metric points at steps after `after_step`, grouped by step, in step order; at most
        `max_steps` steps, each complete (all its names), so a caller can continue from the last one."""
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
        steps: dict[int, dict[str, float | None]] = {}
        for step, name, value in rows:
            steps.setdefault(step, {})[name] = value
        return [MetricStep(step, values) for step, values in steps.items()]


def _event_state(fields: RowMapping) -> JobEventState:
    return JobEventState(
        id=fields["public_id"],
        status=fields["status"],
        created_at=fields["created_at"],
        started_at=fields["started_at"],
        finished_at=fields["finished_at"],
        progress=progress_from_row(fields),
        summary=summary_from_json(fields["summary"]),
        error=fields["error"],
    )
