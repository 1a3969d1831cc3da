"""Storing what the jobs of a fused group report: at a sync point, one batched write of every job's buffered
metrics, telemetry and landscape probes, and one progress statement for the group.

Each job keeps its own `Callbacks`, whose reports land in the group's buffers under the job's id. The trainer
calls `on_sync_point` once every job has reported a sync point; the buffers are written then, when due — as
a separate job's `StoreReporter` does, at most every FLUSH_EVERY_SECONDS or once FLUSH_EVERY_POINTS points
wait — and the group's progress at step 0, then at most every PROGRESS_EVERY_SECONDS. Both take a number of
statements that does not grow with the group (`write_series_of_jobs`, `set_group_progress`). A job whose
model ends is written on its own (`finish`) and leaves the group's progress; events and views stay per job.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from core.results import Callbacks, LandscapeRecord, MetricPoint, Progress, TelemetryRecord
from core.store import StoreInterface
from worker.reporting import FLUSH_EVERY_POINTS, FLUSH_EVERY_SECONDS, PROGRESS_EVERY_SECONDS


class GroupReporter:
    """Receives the reports of a group's jobs (from the training thread) and stores them together."""

    def __init__(self, store: StoreInterface, owner: str) -> None:
        self.store = store
        self.owner = owner
        self._metrics: dict[str, list[MetricPoint]] = {}
        self._telemetry: dict[str, list[TelemetryRecord]] = {}
        self._landscape: dict[str, list[LandscapeRecord]] = {}
        self._reporting: list[str] = []  # the jobs whose progress the group writes: those not finished
        self._progress: Progress | None = None
        self._progress_written_at: float | None = None
        self._flushed_at = time.monotonic()

    def callbacks(self, job_id: str, should_stop: Callable[[], bool]) -> Callbacks:
        """The callbacks of one job of the group."""
        self._reporting.append(job_id)
        self._metrics[job_id], self._telemetry[job_id], self._landscape[job_id] = [], [], []
        return Callbacks(
            on_progress=self._on_progress,
            on_metrics=lambda points: self._metrics[job_id].extend(points),
            on_telemetry=lambda records: self._telemetry[job_id].extend(records),
            on_landscape=lambda records: self._landscape[job_id].extend(records),
            should_stop=should_stop,
        )

    def _on_progress(self, progress: Progress) -> None:
        # One step counter for the group: every job reports the same progress at a sync point.
        self._progress = progress

    def on_sync_point(self, step: int) -> None:
        """Every job has reported the sync point at `step`: write what is due, for all of them at once."""
        now = time.monotonic()
        waiting = sum(len(points) for points in self._metrics.values())
        if waiting >= FLUSH_EVERY_POINTS or now - self._flushed_at >= FLUSH_EVERY_SECONDS:
            self.flush()
        progress = self._progress
        written_at = self._progress_written_at
        if progress is not None and (written_at is None or now - written_at >= PROGRESS_EVERY_SECONDS):
            self.store.set_group_progress(
                self._reporting, progress.step, progress.steps, progress.steps_per_second, owner=self.owner
            )
            self._progress_written_at = now

    def flush(self, job_ids: Iterable[str] | None = None) -> None:
        """Write what `job_ids` (every job when None) buffered, in one batched write; what fails to write
        stays buffered for the next flush."""
        chosen = list(self._metrics) if job_ids is None else list(job_ids)
        self.store.write_series_of_jobs(
            {job_id: self._metrics[job_id] for job_id in chosen},
            telemetry={job_id: self._telemetry[job_id] for job_id in chosen},
            landscape={job_id: self._landscape[job_id] for job_id in chosen},
        )
        for job_id in chosen:
            self._metrics[job_id], self._telemetry[job_id], self._landscape[job_id] = [], [], []
        if job_ids is None:
            self._flushed_at = time.monotonic()

    def finish(self, job_id: str) -> None:
        """The job's model has ended: write what it buffered now, and leave it out of the group's progress."""
        self.flush([job_id])
        self._reporting.remove(job_id)
