"""Engines for PostgreSQL (psycopg 3) and SQLite (WAL journal, busy timeout, foreign keys on every
connection — the embedded mode shares one SQLite file between the API and the worker).

A PostgreSQL engine given a statement timeout bounds every wait on an open connection, in two layers:
the server cancels a statement past the timeout itself (`statement_timeout`: a clean error, its locks
released, the connection still usable), and the client gives up on a server that has not answered
`ANSWER_GRACE_SECONDS` later (the connection is closed and the pool discards it). The second layer is
what holds when the server is silent — packets dropped, its process stopped or hung — because then the
server enforces nothing, and TCP options (keepalives, `tcp_user_timeout`) cannot tell while the server's
kernel still acknowledges every packet.
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import sqlalchemy as sa
from psycopg.abc import PQGen
from sqlalchemy.engine import Engine

SQLITE_BUSY_TIMEOUT_MS = 30_000  # writers wait their turn instead of failing with "database is locked"
POSTGRES_CONNECT_TIMEOUT_SECONDS = 5
# How much longer than the server's statement_timeout the client waits: a live server's cancellation
# arrives first, so only a silent server is given up on.
ANSWER_GRACE_SECONDS = 1.0
PSYCOPG_WAIT_INTERVAL_SECONDS = 0.1  # psycopg's own: how often a wait wakes up to notice Ctrl-C
# A pooled connection idle longer than this is pinged before it is used again (see `_check_on_checkout`).
PING_AFTER_IDLE_SECONDS = 5.0
_CHECKED_IN_AT = "bnlab_checked_in_at"

ResultType = TypeVar("ResultType")


def normalize_database_url(url: str) -> str:
    """Pin PostgreSQL URLs to the psycopg 3 driver (a bare postgresql:// would pick psycopg2)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
    finally:
        cursor.close()


class AnswerDeadlineConnection(psycopg.Connection[Any]):
    """A psycopg connection that stops waiting for a server which does not answer: every wait on it once
    open (a statement and its rows, a commit or rollback, the pool's ping) ends after
    `answer_timeout_seconds` with the connection closed and an `OperationalError`."""

    answer_timeout_seconds: float | None = None

    def wait(
        self,
        gen: PQGen[ResultType],
        interval: float = PSYCOPG_WAIT_INTERVAL_SECONDS,
        timeout: float | None = None,
    ) -> ResultType:
        if timeout is not None or self.answer_timeout_seconds is None:  # psycopg's own bounded waits
            return super().wait(gen, interval, timeout)
        try:
            return super().wait(gen, interval, self.answer_timeout_seconds)
        except psycopg.errors._WaitTimeout:
            # Abandoned mid-exchange, the connection cannot be used again; closed, SQLAlchemy sees a
            # disconnect and the pool replaces it.
            self.pgconn.finish()
            raise psycopg.OperationalError(
                f"the database server did not answer within {self.answer_timeout_seconds:g} s"
            ) from None


def _connect_with_statement_timeout(
    statement_timeout_seconds: float,
) -> Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], AnswerDeadlineConnection]:
    """A `do_connect` listener: connections whose server cancels statements past the timeout and whose
    client gives up `ANSWER_GRACE_SECONDS` after that."""
    server_option = f"-c statement_timeout={round(statement_timeout_seconds * 1000)}"

    def connect(
        _dialect: Any, _record: Any, cargs: tuple[Any, ...], cparams: dict[str, Any]
    ) -> AnswerDeadlineConnection:
        options = cparams.get("options")  # e.g. ?options=... in DATABASE_URL
        cparams["options"] = f"{options} {server_option}" if options else server_option
        connection = AnswerDeadlineConnection.connect(*cargs, **cparams)
        connection.answer_timeout_seconds = statement_timeout_seconds + ANSWER_GRACE_SECONDS
        return connection

    return connect


def create_database_engine(url: str, statement_timeout_seconds: float = 0, **engine_options: Any) -> Engine:
    """An engine for `url`; SQLite connections get WAL + busy timeout (and the file's directory is created),
    PostgreSQL connections a liveness check, a connect timeout and, when `statement_timeout_seconds` > 0,
    the statement timeout of the module docstring (0: none, e.g. for migrations, which may run long)."""
    url = normalize_database_url(url)
    if url.startswith("sqlite"):
        database = sa.engine.make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)  # e.g. ./var/ on a fresh clone
        engine = sa.create_engine(url, **engine_options)
        sa.event.listen(engine, "connect", _configure_sqlite_connection)
        return engine
    # Survive a database restart between requests: a connection is checked as the pool hands it out
    # (`_check_on_checkout`, unless the caller chose `pool_pre_ping`), without a round trip while it is in
    # steady use.
    check_on_checkout = "pool_pre_ping" not in engine_options
    # A new connection to a server that drops packets instead of refusing would otherwise hold a request
    # until the kernel's TCP timeout (minutes); with this the API answers 503 within seconds.
    connect_args = {
        "connect_timeout": POSTGRES_CONNECT_TIMEOUT_SECONDS,
        **engine_options.pop("connect_args", {}),
    }
    engine = sa.create_engine(url, connect_args=connect_args, **engine_options)
    if statement_timeout_seconds > 0:
        sa.event.listen(engine, "do_connect", _connect_with_statement_timeout(statement_timeout_seconds))
    if check_on_checkout:
        sa.event.listen(engine, "checkout", _check_on_checkout(engine.dialect))
        sa.event.listen(engine, "checkin", _note_checkin)
    return engine


def _note_checkin(_dbapi_connection: Any, record: Any) -> None:
    if record is not None:
        record.info[_CHECKED_IN_AT] = time.monotonic()


def _has_input(dbapi_connection: Any) -> bool:
    """Whether the server sent anything to this idle connection: a server that shut down or terminated
    the session sends its last message and closes the socket, so it reads as ready (so does EOF)."""
    poller = select.poll()
    poller.register(dbapi_connection.pgconn.socket, select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


def _check_on_checkout(dialect: Any) -> Callable[[Any, Any, Any], None]:
    """A `checkout` listener that makes sure a pooled connection still works before it is used, like
    SQLAlchemy's `pool_pre_ping` but with a round trip (a `SELECT 1`) only when the connection was idle
    for more than `PING_AFTER_IDLE_SECONDS`, or when the server has sent it something since it was last
    used (a restart or a terminated session: its farewell and end of file). A connection in steady use —
    a burst of submits — is handed out after one `poll` of its socket. A connection that fails the ping is
    replaced by the pool (SQLAlchemy retries the checkout on `DisconnectionError`)."""

    def check(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in_at = record.info.get(_CHECKED_IN_AT)  # gone with the connection it was noted for
        idle_seconds = time.monotonic() - checked_in_at if checked_in_at is not None else None
        recently_used = idle_seconds is not None and idle_seconds < PING_AFTER_IDLE_SECONDS
        try:
            if recently_used and not dbapi_connection.closed and not _has_input(dbapi_connection):
                return
            dialect.do_ping(dbapi_connection)
        except psycopg.Error as error:
            raise sa.exc.DisconnectionError(f"pooled connection is gone: {error}") from error

    return check
