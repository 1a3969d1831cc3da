"""kombu's SQLAlchemy transport, adapted to the embedded mode's SQLite broker.

Two things the stock transport cannot do:
- its `polling_interval` (how long an idle consumer sleeps between polls: the floor of enqueue → start
  latency) cannot be set through `broker_transport_options`, because the stock channel hands every
  transport option to `create_engine()`, which rejects it; this channel keeps it out of the engine;
- its engine gets no SQLite pragmas; this one gets WAL + busy timeout like every other connection to the
  embedded files, so the API, the worker and the broker share them without "database is locked".

`install()` (called by `core.queue.make_celery`) makes every `sqla+…` broker URL in the process use it: the
URL may reach kombu from the settings or, in a `celery` command, straight from the BROKER_URL variable.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import sqlalchemy as kombu_sqlalchemy

from core.db.engine import create_database_engine

# Transport options that are the transport's own (kombu's retry policy and table names) rather than
# create_engine() arguments.
_NOT_ENGINE_OPTIONS = frozenset(
    {
        "polling_interval",
        "queue_tablename",
        "message_tablename",
        "callback",
        "errback",
        "max_retries",
        "interval_start",
        "interval_step",
        "interval_max",
        "retry_errors",
    }
)


class SQLiteBrokerChannel(kombu_sqlalchemy.Channel):
    def _engine_from_config(self) -> Any:
        client = self.connection.client
        engine_options = {
            name: value for name, value in client.transport_options.items() if name not in _NOT_ENGINE_OPTIONS
        }
        return create_database_engine(client.hostname, **engine_options)


class SQLiteBrokerTransport(kombu_sqlalchemy.Transport):
    """The SQLAlchemy transport whose `polling_interval` transport option takes effect."""

    Channel = SQLiteBrokerChannel


TRANSPORT_PATH = f"{__name__}:{SQLiteBrokerTransport.__name__}"


def install() -> None:
    """Resolve kombu's `sqla` / `sqlalchemy` URL schemes to `SQLiteBrokerTransport` in this process."""
    for scheme in ("sqla", "sqlalchemy"):
        TRANSPORT_ALIASES[scheme] = TRANSPORT_PATH
