"""The comparison a query asks for: its query parameters, and loading it from the store — the jobs, their
downsampled series and exact target crossings.

Shared by `GET /v1/compare` and `GET /v1/compare/plot` (`ComparisonDep`), so the table and the picture
always agree.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, HTTPException, Query, status

from api.dependencies import StoreDep, normalize_job_id
from api.errors import query_error
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
from core.gradient_ics import LayerICS, ics_summary
from core.store import JobView, StoreInterface
from core.sweeps import JobOutcome

READ_GROUPS = 2  # the jobs to read are split into this many groups, read at once on their own connections
CACHED_SERIES = 256  # ≤ 1,000 points each at the default limits: a few MB at most

Crossing = tuple[int, float] | None
Entry = TypeVar("Entry")

MAX_COMPARED_JOBS = 50
MIN_POINTS = 10  # room for the always-kept points (ends, target crossing, divergence) and some shape
MAX_POINTS = 10_000
METRIC_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"

JobIds = Annotated[
    list[Annotated[str, Query(max_length=64)]],
    Query(min_length=1, max_length=MAX_COMPARED_JOBS, description="1 to 50 job ids; repeat `ids=`"),
]
Metric = Annotated[str, Query(pattern=METRIC_PATTERN, description="the series compared")]
Target = Annotated[
    float | None,
    Query(
        allow_inf_nan=False,
        description="count steps to this value (≥ for accuracies, ≤ for losses); default: the baseline's "
        "target_accuracy for an accuracy metric",
    ),
]
Baseline = Annotated[str | None, Query(max_length=64, description="one of `ids` (default: the first)")]
MaxPoints = Annotated[int, Query(ge=MIN_POINTS, le=MAX_POINTS, description="per series")]


class FinishedCache(Generic[Entry]):
    """What was read of finished jobs, which never changes again: a comparison and its plot, or a
    comparison looked at again with another baseline, read each long series (and each job's telemetry)
    once. Least recently used entries go first; safe to share between the request threads."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[Hashable, Entry] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: Hashable, entry: Entry) -> None:
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)


FinishedSeriesCache = FinishedCache[tuple[Series, Crossing]]  # downsampled series and target crossings
finished_series = FinishedSeriesCache(CACHED_SERIES)
finished_ics: FinishedCache[list[LayerICS]] = FinishedCache(CACHED_SERIES)  # a few layers each


@dataclass(frozen=True)
class Comparison:
    metric: str
    target: float | None
    baseline: str
    rows: list[ComparisonRow]
    series: dict[str, Series]
    outcomes: list[JobOutcome]  # each job's final value and steps to target, for arms compared over seeds


def load_jobs(store: StoreInterface, raw_ids: Sequence[str]) -> list[JobView]:
    """The jobs in the order asked for (duplicates dropped), read in one query; 404 naming every id that
    is unknown."""
    requested = {raw_id: normalize_job_id(raw_id) for raw_id in dict.fromkeys(raw_ids)}
    found = store.get_jobs([job_id for job_id in requested.values() if job_id is not None])
    jobs: list[JobView] = []
    unknown: list[str] = []
    for raw_id, job_id in requested.items():
        job = found.get(job_id) if job_id is not None else None
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
    store: StoreInterface,
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
        raise query_error("baseline", raw_baseline, "the baseline must be one of the compared ids")
    if target is None:
        target = default_target(baseline, metric)

    series = _read_series(store, jobs, metric, target, max_points)
    ics = _read_ics(store, jobs)
    compared = [_compared_job(store, job, *series[job.id], ics.get(job.id)) for job in jobs]
    # Shared bucket edges over the longest run keep the series aligned on steps.
    span = (0, max((job.series.steps[-1] for job in compared if job.series.steps), default=0))
    downsampled = {
        job.id: downsample(job.series, max_points, keep_steps=_steps(job.steps_to_target), step_span=span)
        for job in compared
    }
    rows = compare(compared, metric, baseline.id)
    return Comparison(metric, target, baseline.id, rows, downsampled, _outcomes(compared, rows))


def _outcomes(compared: Sequence[ComparedJob], rows: Sequence[ComparisonRow]) -> list[JobOutcome]:
    """The compared jobs, in the order asked for, as arms are compared: the metric's final and best
    value, its steps to the target, and the steps each job ran."""
    row_of = {row.id: row for row in rows}
    return [
        JobOutcome(
            job_id=job.id,
            status=job.status,
            spec=job.spec,
            final_accuracy=row_of[job.id].final,
            best_accuracy=row_of[job.id].best,
            steps_to_target=job.steps_to_target,
            steps_run=job.steps_run,
        )
        for job in compared
    ]


def _read_series(
    store: StoreInterface, jobs: Sequence[JobView], metric: str, target: float | None, max_points: int
) -> dict[str, tuple[Series, Crossing]]:
    """Each job's series as the store downsamples it, with its exact first target crossing (kept in it).
    Finished jobs read before come from the cache; the others are read in a few store calls at once."""
    keys = {job.id: (store.url, job.id, metric, target, max_points) for job in jobs}
    entries: dict[str, tuple[Series, Crossing]] = {}
    for job in jobs:
        cached = finished_series.get(keys[job.id]) if job.is_terminal else None
        if cached is not None:
            entries[job.id] = cached
    unread = [job for job in jobs if job.id not in entries]
    if unread:
        groups = [[job.id for job in unread[start::READ_GROUPS]] for start in range(READ_GROUPS)]
        # The database works on the groups at once: a second core halves the wait when there is one.
        with ThreadPoolExecutor(max_workers=READ_GROUPS) as pool:
            reads = pool.map(
                lambda job_ids: store.read_series_with_crossings(
                    job_ids, metric, max_points, target, higher_is_better(metric)
                ),
                [group for group in groups if group],
            )
            read = {job_id: stored for group_read in reads for job_id, stored in group_read.items()}
        for job in unread:
            stored = read[job.id]
            series = Series.of(stored.steps, stored.values)
            if stored.crossing is not None and stored.crossing[0] not in series.steps:
                series = _with_point(series, *stored.crossing)
            entries[job.id] = (series, stored.crossing)
            if job.is_terminal:
                finished_series.put(keys[job.id], entries[job.id])
    return entries


def _compared_job(
    store: StoreInterface, job: JobView, series: Series, crossing: Crossing, ics: list[LayerICS] | None
) -> ComparedJob:
    """One job's part of a comparison: its record, its series, its exact target crossing, its landscape
    probes and its gradient-based ICS."""
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
        ics=ics,
    )


def _landscape(store: StoreInterface, job: JobView) -> LandscapeProbes | None:
    """The job's probes by step, for a job run with landscape probes (most comparisons have none)."""
    if not job.spec.get("landscape_every"):
        return None
    probes = store.read_landscape(job.id)
    return {probe.step: {name: getattr(probe, name) for name in LANDSCAPE_QUANTITIES} for probe in probes}


def _read_ics(store: StoreInterface, jobs: Sequence[JobView]) -> dict[str, list[LayerICS]]:
    """The gradient-based ICS per hidden layer of each job run with telemetry (the others have none),
    finished jobs' from the cache, the rest read in one query of the two columns."""
    summaries: dict[str, list[LayerICS]] = {}
    unread = []
    for job in jobs:
        if not job.spec.get("telemetry_every"):
            continue
        cached = finished_ics.get((store.url, job.id)) if job.is_terminal else None
        if cached is not None:
            summaries[job.id] = cached
        else:
            unread.append(job)
    read = store.read_gradient_ics([job.id for job in unread])
    for job in unread:
        summaries[job.id] = ics_summary(read[job.id])
        if job.is_terminal:
            finished_ics.put((store.url, job.id), summaries[job.id])
    return summaries


def _steps(step: int | None) -> list[int]:
    return [] if step is None else [step]


def _with_point(series: Series, step: int, value: float | None) -> Series:
    """The series with one more point inserted in step order (the exact target crossing)."""
    points = sorted(
        [*zip(series.steps, series.values, strict=True), (step, value)], key=lambda point: point[0]
    )
    return Series([point[0] for point in points], [point[1] for point in points])


def get_comparison(
    store: StoreDep,
    ids: JobIds,
    metric: Metric = "val_accuracy",
    target: Target = None,
    baseline: Baseline = None,
    max_points: MaxPoints = 500,
) -> Comparison:
    """The comparison the query asks for; the table and its plot take the same parameters through it."""
    return load_comparison(store, ids, metric, target, baseline, max_points)


ComparisonDep = Annotated[Comparison, Depends(get_comparison)]
