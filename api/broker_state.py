"""What the re-publisher asks the broker to find messages it lost: how many messages each queue holds, and
how long a Redis broker has been up (a restarted Redis without persistence has lost every message it held).

Both answer None when the broker cannot tell (another transport, or it cannot be reached: the reachability
probe reports that, so these only log at debug level): the caller then falls back on `REQUEUE_AFTER`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from amqp.exceptions import ChannelError
from celery import Celery
from kombu import Connection

from api.probes import BROKER_CHECK_SECONDS

logger = logging.getLogger(__name__)


def _connected(connection: Connection) -> Connection:
    """The connection, connected within the probes' bound (kombu would otherwise retry for long)."""
    connection.ensure_connection(
        max_retries=1, interval_start=0, interval_step=0, timeout=BROKER_CHECK_SECONDS
    )
    return connection


def queue_sizes(celery_app: Celery, queues: Collection[str]) -> dict[str, int | None]:
    """Messages waiting in each queue (not those a worker holds unacknowledged)."""
    sizes: dict[str, int | None] = {}
    if not queues:
        return sizes
    try:
        with celery_app.connection_for_read() as connection:
            channel = _connected(connection).default_channel
            for queue in queues:
                try:
                    sizes[queue] = channel.queue_declare(queue=queue, passive=True).message_count
                except ChannelError:  # Redis keeps no key for an empty queue: "no such queue" is empty
                    sizes[queue] = 0
    except Exception as error:  # whatever the transport raised, the sizes are unknown this round
        logger.debug("could not read the broker's queue sizes: %s", error)  # the probe says it is down
        return dict.fromkeys(queues)
    return sizes


def broker_uptime_seconds(celery_app: Celery) -> int | None:
    """Whole seconds since a Redis broker started (`INFO server`); None for another transport."""
    try:
        with celery_app.connection_for_read() as connection:
            if connection.transport.driver_type != "redis":
                return None
            redis_client = _connected(connection).default_channel.client  # type: ignore[attr-defined]
            return int(redis_client.info("server")["uptime_in_seconds"])
    except Exception as error:  # unknown this round
        logger.debug("could not read the broker's uptime: %s", error)
        return None
