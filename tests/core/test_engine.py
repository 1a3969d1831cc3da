"""A PostgreSQL server that accepts connections but never answers costs seconds, not the TCP timeout: at
connect (the connect timeout), and on a connection already open when it went silent (the statement
timeout); a live server cancels a statement past the statement timeout itself."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa
import sqlalchemy.exc
from sqlalchemy.engine import make_url

from core.db.engine import ANSWER_GRACE_SECONDS, POSTGRES_CONNECT_TIMEOUT_SECONDS
from core.db.migrate import upgrade_database
from core.spec import JobSpec
from core.store import Store
from tests.fixtures.databases import PG_ADMIN_DSN
from tests.fixtures.proxy import CuttableProxy

STATEMENT_TIMEOUT_SECONDS = 0.5
SPEC = JobSpec.model_validate(
    {"architecture": {"kind": "mlp", "hidden": [8]}, "batch_norm": True, "learning_rate": 0.1, "dropout": 0.0}
    | {"steps": 20, "eval_every": 10}
)


def test_a_silent_database_server_fails_within_the_connect_timeout() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes the handshake; nobody ever speaks the protocol
    port = silent.getsockname()[1]
    store = Store(f"postgresql://postgres@127.0.0.1:{port}/bnlab")
    try:
        started = time.monotonic()
        with pytest.raises(sqlalchemy.exc.OperationalError):
            store.ping()
        elapsed = time.monotonic() - started
    finally:
        store.dispose()
        silent.close()
    assert elapsed < POSTGRES_CONNECT_TIMEOUT_SECONDS + 3, f"waited {elapsed:.1f} s"


@pytest.fixture
def proxied_store(postgres_url: str) -> Iterator[tuple[Store, CuttableProxy]]:
    """A store with a short statement timeout on a migrated database, reached through a proxy."""
    upgrade_database(postgres_url)
    url = make_url(postgres_url)
    proxy = CuttableProxy(url.port or 5432)
    proxied_url = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    store = Store(proxied_url, statement_timeout_seconds=STATEMENT_TIMEOUT_SECONDS)
    try:
        yield store, proxy
    finally:
        store.dispose()
        proxy.close()


def test_a_write_on_an_open_connection_to_a_server_gone_silent_fails_within_the_statement_timeout(
    proxied_store: tuple[Store, CuttableProxy],
) -> None:
    store, proxy = proxied_store
    store.ping()  # the pooled connection is open
    proxy.go_silent()
    started = time.monotonic()
    with pytest.raises(sqlalchemy.exc.OperationalError, match=r"did not answer|timeout expired"):
        store.create_job(SPEC)
    elapsed = time.monotonic() - started
    proxy.speak_again()

    # The pool's ping gives up on the open connection after the statement timeout and a second; its one
    # attempt at a new connection then meets the connect timeout.
    bound = STATEMENT_TIMEOUT_SECONDS + ANSWER_GRACE_SECONDS + POSTGRES_CONNECT_TIMEOUT_SECONDS
    assert elapsed < bound + 2, f"waited {elapsed:.1f} s"
    assert store.create_job(SPEC).status == "queued"  # and the store recovers on its own
    jobs, _ = store.list_jobs()
    assert len(jobs) == 1  # the write refused during the silence stored nothing


def test_a_live_server_cancels_a_statement_past_the_statement_timeout_and_the_connection_goes_on(
    proxied_store: tuple[Store, CuttableProxy],
) -> None:
    store, proxy = proxied_store
    with store.engine.connect() as connection:
        started = time.monotonic()
        with pytest.raises(sqlalchemy.exc.OperationalError, match="statement timeout"):
            connection.execute(sa.select(sa.func.pg_sleep(10)))
        elapsed = time.monotonic() - started
        connection.rollback()
        assert connection.scalar(sa.select(sa.literal(1))) == 1  # the same connection, still usable
    assert STATEMENT_TIMEOUT_SECONDS <= elapsed < STATEMENT_TIMEOUT_SECONDS + ANSWER_GRACE_SECONDS
    assert proxy.accepted == 1  # nothing was reconnected


def test_a_pooled_connection_whose_session_ended_is_replaced_before_it_is_used(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database restart between two requests costs no failed request, and a connection in steady use
    costs no ping: the pool pings a connection it hands out only when its socket has something to read (a
    terminated session's farewell and end of file, as a restart sends) or after it sat idle for a while."""
    upgrade_database(postgres_url)
    store = Store(postgres_url, statement_timeout_seconds=30)
    pings: list[object] = []
    ping = store.engine.dialect.do_ping
    monkeypatch.setattr(store.engine.dialect, "do_ping", lambda connection: pings.append(ping(connection)))
    try:
        store.create_job(SPEC)  # a new connection is pinged once
        for _ in range(5):
            store.create_job(SPEC)
        assert len(pings) == 1  # in steady use: no round trip before each statement
        with store.engine.connect() as connection:
            backend = connection.scalar(sa.text("SELECT pg_backend_pid()"))
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [backend])
        time.sleep(0.5)  # the farewell reaches the pooled connection's socket

        assert store.create_job(SPEC).status == "queued"  # not a failed request
        with store.engine.connect() as connection:
            assert connection.scalar(sa.text("SELECT pg_backend_pid()")) != backend
        jobs, _ = store.list_jobs()
        assert len(jobs) == 7
    finally:
        store.dispose()
