"""Keeping the leases of what one delivery trains alive — one job, or the jobs of a fused group — and
noticing a cancel request or a lost lease.

A daemon thread renews the heartbeat of every held job in one UPDATE every `heartbeat_seconds`, and polls
their cancel flags more often (a cancel must stop a running job within about a second, heartbeats can be
far rarer). The training thread only reads what the thread last saw, so `should_stop` costs nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from core.store import StoreInterface

logger = logging.getLogger(__name__)

CANCEL_POLL_SECONDS = 0.25


class LeaseKeeper:
    """Heartbeats `owner`'s leases on `job_ids` and reads their cancel flags, from one background thread,
    until the `with` block ends; a lease found lost stops it (another worker took the job over)."""

    def __init__(
        self,
        store: StoreInterface,
        job_ids: Sequence[str],
        owner: str,
        heartbeat_seconds: float,
        cancel_poll_seconds: float = CANCEL_POLL_SECONDS,
    ) -> None:
        self.store = store
        self.owner = owner
        self.heartbeat_seconds = heartbeat_seconds
        self.poll_seconds = min(cancel_poll_seconds, heartbeat_seconds)
        self.lease_lost = threading.Event()
        self._description = f"job {job_ids[0]}" if len(job_ids) == 1 else f"fused group of job {job_ids[0]}"
        self._held = set(job_ids)  # the jobs still training under this lease
        self._cancel_requested: frozenset[str] = frozenset()  # replaced whole by the thread, read by others
        # Held while a heartbeat is in flight: a job released during one would be counted as lost.
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._keep, name=f"lease-{job_ids[0][:8]}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *_exception: object) -> None:
        self._stopped.set()
        self._thread.join()

    def cancel_requested(self, job_id: str) -> bool:
        """Whether a user asked to cancel `job_id` (as last polled)."""
        return job_id in self._cancel_requested

    def should_stop(self, job_id: str) -> bool:
        """Whether `job_id` must stop training: a user asked to cancel it, or a lease was lost."""
        return job_id in self._cancel_requested or self.lease_lost.is_set()

    def release(self, job_id: str) -> None:
        """Stop heartbeating `job_id`: call it before finishing a job while others train on (a finished job's
        lease is not renewed, and would be counted as lost)."""
        with self._lock:
            self._held.discard(job_id)

    def _keep(self) -> None:
        next_heartbeat = time.monotonic() + self.heartbeat_seconds
        while not self._stopped.wait(self.poll_seconds):
            try:
                with self._lock:
                    held = sorted(self._held)
                    if not held:
                        return
                    self._cancel_requested = frozenset(self.store.cancel_requested_among(held))
                    if time.monotonic() < next_heartbeat:
                        continue
                    if self.store.heartbeat_jobs(held, self.owner) < len(held):
                        logger.warning("%s: a lease was lost, stopping", self._description)
                        self.lease_lost.set()
                        return
                next_heartbeat = time.monotonic() + self.heartbeat_seconds
            except SQLAlchemyError:
                # The database is unreachable for now: keep trying. If it stays away past the lease, the
                # heartbeat that finally lands finds the lease taken over, and training stops then.
                logger.warning("%s: heartbeat failed", self._description, exc_info=True)
