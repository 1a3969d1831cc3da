"""A PostgreSQL server that accepts connections but never answers costs seconds, not the TCP timeout."""

from __future__ import annotations

import socket
import time

import pytest
import sqlalchemy.exc

from core.db.engine import POSTGRES_CONNECT_TIMEOUT_SECONDS
from core.store import Store


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
