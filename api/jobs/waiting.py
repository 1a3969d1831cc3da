"""A job's view with `waiting_for` filled in: for a queued job, whether any live worker consumes its queue
(`core.waiting`); null for every other status.

The live workers are read from the store, and on the submit path that read is one database round trip in
four; `LiveQueues` keeps the last read for a second, and serves it only to say that a queue has a worker.
A job that would wait for ever is told so from a fresh read, so a worker that has just registered is seen
at once; a worker that has just gone is still counted for up to a second, well inside the lease that
already decides when a silent worker counts as gone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from api.jobs.schemas import JobOut
from core.store import JobView, StoreInterface
from core.waiting import waiting_for

LIVE_QUEUES_MAX_AGE_SECONDS = 1.0


class LiveQueues:
    """The queues each live worker consumes, as last read from `store` (workers alive within
    `alive_seconds`), for at most `max_age_seconds` when the answer is that a queue has a worker."""

    def __init__(
        self,
        store: StoreInterface,
        alive_seconds: float,
        max_age_seconds: float = LIVE_QUEUES_MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.alive_seconds = alive_seconds
        self.max_age_seconds = max_age_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._queues: list[list[str]] = []

    def waiting_for(self, devices: list[str]) -> list[str | None]:
        """`core.waiting.waiting_for` of queued jobs of `devices`: None for those whose queue a recent read
        found a worker for, the others from one fresh read."""
        with self._lock:
            recent, queues = self.clock() - self._read_at < self.max_age_seconds, self._queues
        served = [recent and waiting_for(device, queues) is None for device in devices]
        if not all(served):
            queues = self.read()
        return [
            None if has_worker else waiting_for(device, queues)
            for device, has_worker in zip(devices, served, strict=True)
        ]

    def read(self) -> list[list[str]]:
        """The live workers' queues, read from the store now (and kept for the next asks)."""
        queues = [queues for queues, _ in self.store.live_worker_devices(self.alive_seconds)]
        with self._lock:
            self._read_at, self._queues = self.clock(), queues
        return queues


def jobs_out_with_waiting_for(jobs: list[JobView], live_queues: LiveQueues) -> list[JobOut]:
    """The views of `jobs`, the live workers read at most once (and not at all when none is queued)."""
    outs = [JobOut.model_validate(job) for job in jobs]
    queued = [(job, out) for job, out in zip(jobs, outs, strict=True) if job.status == "queued"]
    if queued:
        devices = [str(job.spec.get("device", "auto")) for job, _ in queued]
        for (_, out), reason in zip(queued, live_queues.waiting_for(devices), strict=True):
            out.waiting_for = reason
    return outs


def job_out_with_waiting_for(job: JobView, live_queues: LiveQueues) -> JobOut:
    return jobs_out_with_waiting_for([job], live_queues)[0]
