"""Publication marks written behind `POST /v1/jobs`: the `enqueued_at` of the jobs it published, recorded by
a thread of the API process, one statement for all the jobs published meanwhile.

The mark tells the republisher (`api.republisher`) that a job reached the broker; a queued job left
unmarked for `UNPUBLISHED_AFTER_SECONDS` is published again. The submit's answer does not wait for it: the
job was committed before it was published, so a mark that comes late or never (the process died, the
database failed) costs at most a second delivery of the job's task, which the lease drops — the job is
trained once either way. Under a burst the requests no longer each wait for an UPDATE and its commit:
while one statement runs, the next requests' marks gather for the following one.

Before `start` and after `stop` (an app used without its lifespan, or shutting down) `add` marks at once,
in the caller's thread, as the submit path did before; `stop` writes what is still pending.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from core.store import StoreInterface

logger = logging.getLogger(__name__)

STOP_TIMEOUT_SECONDS = 5.0


class PublicationMarks:
    """Marks published jobs enqueued from a thread of its own between `start` and `stop`."""

    def __init__(self, store: StoreInterface) -> None:
        self.store = store
        self._pending: list[str] = []
        self._accepting = False  # whether `add` leaves marks to the thread
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="bnlab-publication-marks", daemon=True)
        self._thread.start()
        with self._lock:
            self._accepting = True

    def stop(self) -> None:
        """Stop the thread once it has written every mark left to it; later marks are written at once."""
        with self._lock:
            self._accepting = False
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        self._wake.set()
        thread.join(STOP_TIMEOUT_SECONDS)

    def add(self, job_ids: Iterable[str]) -> None:
        """Mark `job_ids` enqueued: soon, from the thread, or at once without it (then a database error
        reaches the caller, as from `Store.mark_enqueued`)."""
        with self._lock:
            if self._accepting:
                self._pending.extend(job_ids)
                self._wake.set()
                return
        self.store.mark_enqueued(*job_ids)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            self._write_pending()
            if self._stopping.is_set():  # `add` stopped leaving marks before: none comes after this write
                self._write_pending()
                return

    def _write_pending(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            self.store.mark_enqueued(*batch)
        except Exception as error:  # unmarked, they look unpublished: the republisher publishes them again
            logger.warning(
                "%d published jobs not marked enqueued (the republisher retries): %s", len(batch), error
            )
