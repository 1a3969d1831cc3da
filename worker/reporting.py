"""Adapting the training core's callbacks to the store: metrics, telemetry and landscape probes are
buffered and written in batches, progress is throttled, checkpoints are saved with everything before them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from core.results import Callbacks, LandscapeRecord, MetricPoint, Progress, TelemetryRecord
from core.store import StoreInterface

PROGRESS_EVERY_SECONDS = 0.5  # DESIGN: progress at step 0, then at most every 0.5 s
FLUSH_EVERY_SECONDS = 1.0  # how stale stored metrics may get while a job runs
FLUSH_EVERY_POINTS = 5000


class StoreReporter:
    """Receives a run's reports (from the training thread) and stores them for `job_id`."""

    def __init__(
        self, store: StoreInterface, job_id: str, owner: str, should_stop: Callable[[], bool]
    ) -> None:
        self.store = store
        self.job_id = job_id
        self.owner = owner
        self.should_stop = should_stop
        self.last_progress: Progress | None = None
        self._progress_written_at: float | None = None
        self._metrics: list[MetricPoint] = []
        self._telemetry: list[TelemetryRecord] = []
        self._landscape: list[LandscapeRecord] = []
        self._flushed_at = time.monotonic()

    def callbacks(self) -> Callbacks:
        return Callbacks(
            on_progress=self.on_progress,
            on_metrics=self.on_metrics,
            on_telemetry=self.on_telemetry,
            on_landscape=self.on_landscape,
            should_stop=self.should_stop,
            on_checkpoint=self.on_checkpoint,
        )

    def on_progress(self, progress: Progress) -> None:
        self.last_progress = progress
        now = time.monotonic()
        if self._progress_written_at is None or now - self._progress_written_at >= PROGRESS_EVERY_SECONDS:
            self.write_progress(progress)
            self._progress_written_at = now
        self._flush_when_due()

    def write_progress(self, progress: Progress) -> None:
        self.store.set_progress(
            self.job_id, progress.step, progress.steps, progress.steps_per_second, owner=self.owner
        )

    def on_metrics(self, points: list[MetricPoint]) -> None:
        self._metrics.extend(points)
        self._flush_when_due()

    def on_telemetry(self, records: list[TelemetryRecord]) -> None:
        self._telemetry.extend(records)
        self._flush_when_due()

    def on_landscape(self, records: list[LandscapeRecord]) -> None:
        self._landscape.extend(records)
        self._flush_when_due()

    def on_checkpoint(self, step: int, blob: bytes) -> None:
        # Everything up to the checkpoint is stored first: a run resumed from it must not leave a gap.
        self.flush()
        self.store.save_checkpoint(self.job_id, step, blob)

    def _flush_when_due(self) -> None:
        if (
            len(self._metrics) >= FLUSH_EVERY_POINTS
            or time.monotonic() - self._flushed_at >= FLUSH_EVERY_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        """Write everything buffered; what fails to write stays buffered for the next flush."""
        if self._metrics:
            self.store.write_metrics(self.job_id, self._metrics)
            self._metrics = []
        if self._telemetry:
            self.store.write_telemetry(self.job_id, self._telemetry)
            self._telemetry = []
        if self._landscape:
            self.store.write_landscape(self.job_id, self._landscape)
            self._landscape = []
        self._flushed_at = time.monotonic()
