"""Reachability probes of the database and the broker, for `/readyz` and the republisher (which also tells a
database without bnlab's tables from one it cannot reach).

Both answer within a few seconds even when the server hangs, and report a failure instead of raising.
"""

from __future__ import annotations

import logging

from celery import Celery

from api.errors import schema_missing
from core.store import StoreInterface

logger = logging.getLogger(__name__)

BROKER_CHECK_SECONDS = 2.0


def broker_reachable(celery_app: Celery) -> bool:
    try:
        with celery_app.connection_for_read() as connection:
            connection.ensure_connection(
                max_retries=1, interval_start=0, interval_step=0, timeout=BROKER_CHECK_SECONDS
            )
    except Exception as error:  # whatever the transport raised, the broker is not usable now
        logger.warning("broker unreachable: %s", error)
        return False
    return True


def database_state(store: StoreInterface) -> str:
    """ "ok", "not migrated" (reachable, but without bnlab's tables) or "unavailable"."""
    try:
        store.ping()
    except Exception as error:  # idem for the database driver
        if schema_missing(error):
            logger.warning("database not migrated: run the migrations")
            return "not migrated"
        logger.warning("database unreachable: %s", error)
        return "unavailable"
    return "ok"
