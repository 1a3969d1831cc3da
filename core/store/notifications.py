"""Change notifications for job event streams on PostgreSQL: the store's writes announce which job changed,
and an API process listens, so its event poller reads at once instead of at its next tick.

Why PostgreSQL `NOTIFY` and not a Redis PUBLISH on the broker: `pg_notify()` runs in the same transaction
as the write it announces, and PostgreSQL delivers it only when that transaction commits. A listener that
hears a job's id can therefore always read the change; a notification is never sent for a write that was
rolled back, and never lost between a commit and a publish made after it (a worker killed in that gap).
It also covers every writer, not only workers (a queued job cancelled by the API, a job failed after
losing its worker too often), needs nothing besides the database the events are read from, and works
with any broker. Its costs are small at bnlab's write rates: one statement in a write transaction that
is open anyway (a job writes progress at most twice a second and metrics about once a second), and one
connection per API process.

The payload is the job's public id; a listener wakes only for jobs it watches. SQLite has no such
mechanism: embedded streams keep the periodic poll, and `notify_job_changed` does nothing there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import psycopg
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import Connection

from core.db.engine import normalize_database_url

logger = logging.getLogger(__name__)

JOB_EVENTS_CHANNEL = "bnlab_job_events"
# A listener that lost its connection tries again after 1 s, then waits twice as long each time up to
# 16 s (the periodic poll carries the streams meanwhile).
FIRST_RECONNECT_SECONDS = 1.0
MAX_RECONNECT_SECONDS = 16.0
LIVENESS_CHECK_SECONDS = 30.0  # the listening connection is checked this often (a dead peer is silent)
CONNECT_TIMEOUT_SECONDS = 5


def notify_job_changed(connection: Connection, job_id: str) -> None:
    """Announce, within `connection`'s transaction, that what a stream shows of `job_id` changed (its
    status, progress or metrics). Delivered when the transaction commits; nothing on SQLite."""
    if connection.dialect.name == "postgresql":
        connection.execute(sa.select(sa.func.pg_notify(JOB_EVENTS_CHANNEL, job_id)))


def notify_jobs_changed(connection: Connection, job_ids: Sequence[str]) -> None:
    """`notify_job_changed` for each of `job_ids`, in one statement whatever their number."""
    if connection.dialect.name == "postgresql" and job_ids:
        connection.execute(
            sa.text("SELECT pg_notify(:channel, job_id) FROM unnest(CAST(:job_ids AS text[])) AS job_id"),
            {"channel": JOB_EVENTS_CHANNEL, "job_ids": list(job_ids)},
        )


def libpq_url(database_url: str) -> str:
    """A SQLAlchemy PostgreSQL URL (any driver) as a libpq connection URI, password included."""
    url = sa.engine.make_url(normalize_database_url(database_url))
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class JobChangeListener:
    """Listens for job change notifications on one connection of its own until its task is cancelled.

    `on_change(job_id)` is called for each notification; `on_connected()` after each (re)connection —
    changes made while it was not listening were not heard, so a caller reads everything it watches then.
    Both run on the event loop and must not block.
    """

    def __init__(
        self,
        database_url: str,
        on_change: Callable[[str], None],
        on_connected: Callable[[], None],
        liveness_check_seconds: float = LIVENESS_CHECK_SECONDS,
    ) -> None:
        self._conninfo = libpq_url(database_url)
        self._on_change = on_change
        self._on_connected = on_connected
        self._liveness_check_seconds = liveness_check_seconds
        self._reconnect_seconds = FIRST_RECONNECT_SECONDS
        self.listening = False  # True while its connection listens

    async def run(self) -> None:
        while True:
            try:
                await self._listen()
            except (psycopg.Error, OSError, TimeoutError) as error:
                logger.warning("job change listener: %s; retrying in %.0f s", error, self._reconnect_seconds)
            except Exception:  # never end for good: streams would silently fall back to the poll alone
                logger.exception("job change listener failed; retrying in %.0f s", self._reconnect_seconds)
            await asyncio.sleep(self._reconnect_seconds)
            self._reconnect_seconds = min(2 * self._reconnect_seconds, MAX_RECONNECT_SECONDS)

    async def _listen(self) -> None:
        connection = await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS
        )
        async with connection:
            await connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(JOB_EVENTS_CHANNEL)))
            self.listening = True
            self._reconnect_seconds = FIRST_RECONNECT_SECONDS
            try:
                self._on_connected()
                while True:
                    async for notification in connection.notifies(timeout=self._liveness_check_seconds):
                        self._on_change(notification.payload)
                    # Make sure the server is still there: a cut network stays silent.
                    await asyncio.wait_for(connection.execute("SELECT 1"), CONNECT_TIMEOUT_SECONDS)
            finally:
                self.listening = False
