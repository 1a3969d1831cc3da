"""Keeping a job's lease alive while it trains, and noticing a cancel request or a lost lease.

A daemon thread renews the heartbeat every `heartbeat_seconds` and polls the cancel flag more often (a
cancel must stop a running job within about a second, heartbeats can be far rarer). The training thread
only reads two events, so `should_stop` costs nothing.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.exc import SQLAlchemyError

from core.store import StoreInterface

logger = logging.getLogger(__name__)

CANCEL_POLL_SECONDS = 0.25


class LeaseKeeper:
    """Heartbeats `owner`'s lease on `job_id` from a background thread until `stop()`."""

    def __init__(
        self,
        store: StoreInterface,
        job_id: str,
        owner: str,
        heartbeat_seconds: float,
        cancel_poll_seconds: float = CANCEL_POLL_SECONDS,
    ) -> None:
        self.store = store
        self.job_id = job_id
        self.owner = owner
        self.heartbeat_seconds = heartbeat_seconds
        self.poll_seconds = min(cancel_poll_seconds, heartbeat_seconds)
        self.cancel_requested = threading.Event()
        self.lease_lost = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._keep, name=f"lease-{job_id[:8]}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *_exception: object) -> None:
        self._stopped.set()
        self._thread.join()

    def _keep(self) -> None:
        next_heartbeat = time.monotonic() + self.heartbeat_seconds
        while not self._stopped.wait(self.poll_seconds):
            try:
                if self.store.is_cancel_requested(self.job_id):
                    self.cancel_requested.set()
                if time.monotonic() >= next_heartbeat:
                    if not self.store.heartbeat(self.job_id, self.owner):
                        logger.warning("job %s: lease lost, stopping", self.job_id)
                        self.lease_lost.set()
                        return
                    next_heartbeat = time.monotonic() + self.heartbeat_seconds
            except SQLAlchemyError:
                # The database is unreachable for now: keep trying. If it stays away past the lease, the
                # heartbeat that finally lands finds the lease taken over and the job stops then.
                logger.warning("job %s: heartbeat failed", self.job_id, exc_info=True)
