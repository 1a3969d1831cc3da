"""Loading a comparison from the store: the jobs, their downsampled series and exact target crossings.

Shared by `GET /v1/compare` and `GET /v1/compare/plot`, so the table and the picture always agree.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from fastapi import HTTPException, status
from fastapi.exceptions import RequestValidationError

from api.dependencies import normalize_job_id
from core.compare import (
    LANDSCAPE_QUANTITIES,
    ComparedJob,
    ComparisonRow,
    LandscapeProbes,
    Series,
    compare,
    downsample,
    higher_is_better,
)
from core.store import JobView, Store

READ_THREADS = 4  # per request; the store's connection pool holds 5 (+10 overflow)
CACHED_SERIES = 256  # ≤ 1,000 points each at the default limits: a few MB at most

Crossing = tuple[int, float] | None


class FinishedSeriesCache:
    """Downsampled series and target crossings of finished jobs, which never change again: a comparison
    and its plot, or a comparison looked at again with another baseline, read each long series once.
    Least recently used entries go first; safe to share between the request threads."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[Hashable, tuple[Series, Crossing]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> tuple[Series, Crossing] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: Hashable, entry: tuple[Series, Crossing]) -> None:
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)


finished_series = FinishedSeriesCache(CACHED_SERIES)


@dataclass(frozen=True)
class Comparison:
    metric: str
    target: float | None
    baseline: str
    rows: list[ComparisonRow]
    series: dict[str, Series]


def load_jobs(store: Store, raw_ids: Sequence[str]) -> list[JobView]:
    """The jobs in the order asked for (duplicates dropped); 404 naming every id that is unknown."""
    jobs: list[JobView] = []
    unknown: list[str] = []
    for raw_id in dict.fromkeys(raw_ids):
        job_id = normalize_job_id(raw_id)
        job = store.get_job(job_id) if job_id is not None else None
        if job is None:
            unknown.append(raw_id)
        elif job.id not in {known.id for known in jobs}:
            jobs.append(job)
    if unknown:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"jobs not found: {', '.join(unknown)}")
    return jobs


def default_target(baseline: JobView, metric: str) -> float | None:
    """Without a target in the query, an accuracy is counted to the baseline's own target_accuracy."""
    if metric.endswith("accuracy"):
        target = baseline.spec.get("target_accuracy")
        return float(target) if target is not None else None
    return None


def load_comparison(
    store: Store,
    raw_ids: Sequence[str],
    metric: str,
    target: float | None,
    raw_baseline: str | None,
    max_points: int,
) -> Comparison:
    jobs = load_jobs(store, raw_ids)
    baseline_id = jobs[0].id if raw_baseline is None else normalize_job_id(raw_baseline)
    baseline = next((job for job in jobs if job.id == baseline_id), None)
    if baseline is None:
        message = "the baseline must be one of the compared ids"
        raise RequestValidationError(
            [{"loc": ("query", "baseline"), "msg": message, "type": "value_error", "input": raw_baseline}]
        )
    if target is None:
        target = default_target(baseline, metric)

    # Each job's reads are independent; the database works on several at once (its time dominates).
    with ThreadPoolExecutor(max_workers=min(len(jobs), READ_THREADS)) as pool:
        compared = list(pool.map(lambda job: _compared_job(store, job, metric, target, max_points), jobs))
    # Shared bucket edges over the longest run keep the series aligned on steps.
    span = (0, max((job.series.steps[-1] for job in compared if job.series.steps), default=0))
    downsampled = {
        job.id: downsample(job.series, max_points, keep_steps=_steps(job.steps_to_target), step_span=span)
        for job in compared
    }
    rows = compare(compared, metric, baseline.id)
    return Comparison(metric, target, baseline.id, rows, downsampled)


def _compared_job(
    store: Store, job: JobView, metric: str, target: float | None, max_points: int
) -> ComparedJob:
    """One job's part of a comparison: its downsampled series with the exact target crossing added."""
    key = (store.url, job.id, metric, target, max_points)
    cached = finished_series.get(key) if job.is_terminal else None
    if cached is None:
        cached = _read_series(store, job.id, metric, target, max_points)
        if job.is_terminal:
            finished_series.put(key, cached)
    series, crossing = cached
    summary = job.summary
    return ComparedJob(
        id=job.id,
        name=job.name,
        status=job.status,
        spec=job.spec,
        series=series,
        steps_to_target=None if crossing is None else crossing[0],
        steps_run=job.progress.step if job.progress is not None else 0,
        steps_per_second=summary.steps_per_second if summary else None,
        recorded_steps_to_target=summary.steps_to_target if summary else None,
        recorded_seconds_to_target=summary.seconds_to_target if summary else None,
        diverged_at_step=summary.diverged_at_step if summary else None,
        landscape=_landscape(store, job),
    )


def _read_series(
    store: Store, job_id: str, metric: str, target: float | None, max_points: int
) -> tuple[Series, Crossing]:
    """The series as the store downsamples it, plus its exact first target crossing (kept in it)."""
    steps, values = store.read_metrics(job_id, [metric], max_points).get(metric, ([], []))
    crossing = None
    if target is not None:
        crossing = store.first_step_meeting(job_id, metric, target, higher_is_better(metric))
    series = Series.of(steps, values)
    if crossing is not None and crossing[0] not in series.steps:
        series = _with_point(series, *crossing)
    return series, crossing


def _landscape(store: Store, job: JobView) -> LandscapeProbes | None:
    """The job's probes by step, for a job run with landscape probes (most comparisons have none)."""
    if not job.spec.get("landscape_every"):
        return None
    probes = store.read_landscape(job.id)
    return {probe.step: {name: getattr(probe, name) for name in LANDSCAPE_QUANTITIES} for probe in probes}


def _steps(step: int | None) -> list[int]:
    return [] if step is None else [step]


def _with_point(series: Series, step: int, value: float | None) -> Series:
    """The series with one more point inserted in step order (the exact target crossing)."""
    points = sorted(
        [*zip(series.steps, series.values, strict=True), (step, value)], key=lambda point: point[0]
    )
    return Series([point[0] for point in points], [point[1] for point in points])
