"""Engines for PostgreSQL (psycopg 3) and SQLite (WAL journal, busy timeout, foreign keys on every
connection — the embedded mode shares one SQLite file between the API and the worker)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

SQLITE_BUSY_TIMEOUT_MS = 30_000  # writers wait their turn instead of failing with "database is locked"
POSTGRES_CONNECT_TIMEOUT_SECONDS = 5


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


def create_database_engine(url: str, **engine_options: Any) -> Engine:
    """An engine for `url`; SQLite connections get WAL + busy timeout (and the file's directory is created),
    PostgreSQL connections a liveness check."""
    url = normalize_database_url(url)
    if url.startswith("sqlite"):
        database = sa.engine.make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)  # e.g. ./var/ on a fresh clone
        engine = sa.create_engine(url, **engine_options)
        sa.event.listen(engine, "connect", _configure_sqlite_connection)
        return engine
    engine_options.setdefault("pool_pre_ping", True)  # survive a database restart between requests
    # A server that drops packets instead of refusing would otherwise hold a request until the kernel's TCP
    # timeout (minutes); with this the API answers 503 within seconds.
    connect_args = {
        "connect_timeout": POSTGRES_CONNECT_TIMEOUT_SECONDS,
        **engine_options.pop("connect_args", {}),
    }
    return sa.create_engine(url, connect_args=connect_args, **engine_options)
