"""The worker registry: each worker process's row — host, queues, device, what it is training — written by
the worker's main process at start and with each of its heartbeats, read by `GET /v1/workers`, by the job
views (is anyone consuming this job's queue?) and by sweeps sizing their fused groups.

A worker is alive while it has not stopped and its `last_seen` is within `alive_seconds` (the lease time:
a worker silent that long has also lost the leases of what it trained). Times come from the database clock
on PostgreSQL and the process clock on SQLite, as for leases. Rows of workers gone for more than
`GONE_WORKERS_KEPT_SECONDS` are deleted when a worker registers, so the table stays as small as the fleet.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

import sqlalchemy as sa

from core.db.types import UtcDateTime
from core.store.base import StoreBase, worker_table
from core.store.conversions import worker_view
from core.store.interface_support import WorkerStoreInterface
from core.store.views import WorkerTraining, WorkerView

GONE_WORKERS_KEPT_SECONDS = 24 * 3600


def new_worker_id() -> str:
    return uuid.uuid4().hex


class WorkerStore(StoreBase, WorkerStoreInterface):
    def register_worker(
        self, worker_id: str, name: str, host: str, pid: int, queues: list[str], device: dict[str, Any]
    ) -> None:
        """Write (or rewrite) the worker's row as started now; forget workers gone for a day."""
        worker = worker_table.c
        with self._engine.begin() as connection:
            connection.execute(
                worker_table.delete().where(worker.last_seen < self._seconds_ago(GONE_WORKERS_KEPT_SECONDS))
            )
            connection.execute(worker_table.delete().where(worker.public_id == worker_id))
            connection.execute(
                worker_table.insert().values(
                    public_id=worker_id,
                    name=name,
                    host=host,
                    pid=pid,
                    queues=list(queues),
                    device=dict(device),
                    training=None,
                    started_at=self._now(),
                    last_seen=self._now(),
                    stopped_at=None,
                )
            )

    def worker_heartbeat(self, worker_id: str, training: WorkerTraining | None) -> bool:
        """Mark the worker seen now, training `training`; False when its row is gone (register again)."""
        with self._engine.begin() as connection:
            updated = connection.execute(
                worker_table.update()
                .where(worker_table.c.public_id == worker_id)
                .values(
                    last_seen=self._now(),
                    training=None if training is None else training.as_json(),
                    stopped_at=None,
                )
            )
        return updated.rowcount > 0

    def worker_stopped(self, worker_id: str) -> None:
        """The worker shut down cleanly: it is gone at once, without waiting to age out."""
        with self._engine.begin() as connection:
            connection.execute(
                worker_table.update()
                .where(worker_table.c.public_id == worker_id)
                .values(stopped_at=self._now(), training=None)
            )

    def list_workers(self, alive_seconds: float, include_gone: bool = False) -> list[WorkerView]:
        """Live workers, then — with `include_gone` — the others, each by host, then start."""
        worker = worker_table.c
        alive = sa.and_(worker.stopped_at.is_(None), worker.last_seen >= self._seconds_ago(alive_seconds))
        alive_flag = sa.case((alive, 1), else_=0).label("alive")
        query: sa.Select[Any] = sa.select(*worker_table.c, alive_flag)
        if not include_gone:
            query = query.where(alive)
        query = query.order_by(alive_flag.desc(), worker.host, worker.started_at)
        with self._engine.connect() as connection:
            return [worker_view(row) for row in connection.execute(query)]

    @cached_property
    def _live_workers(self) -> sa.Select[tuple[Any, Any]]:
        """Every `POST /v1/jobs` reads it (`waiting_for`): built once, its parameter the oldest `last_seen`
        alive (PostgreSQL: how long ago, from the database clock)."""
        worker = worker_table.c
        if self.is_postgres:
            clock = sa.func.clock_timestamp(type_=UtcDateTime())
            oldest_alive = clock - sa.bindparam("alive", type_=sa.Interval())
        else:
            oldest_alive = sa.bindparam("oldest_alive", type_=UtcDateTime())
        return sa.select(worker.queues, worker.device).where(
            worker.stopped_at.is_(None), worker.last_seen >= oldest_alive
        )

    def live_worker_devices(self, alive_seconds: float) -> list[tuple[list[str], dict[str, Any]]]:
        """(queues, device) of each live worker: who can take a job of which queue, on what hardware."""
        alive = timedelta(seconds=alive_seconds)
        parameters = {"alive": alive} if self.is_postgres else {"oldest_alive": datetime.now(UTC) - alive}
        with self._autocommit() as connection:
            rows = connection.execute(self._live_workers, parameters)
            return [(list(queues), dict(device)) for queues, device in rows]
