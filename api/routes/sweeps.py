"""`/v1/sweeps`: submit a grid of specs × seeds, list sweeps, read one aggregated per grid point, cancel one.

The whole product is validated before anything is stored (one bad point → 422 naming it, nothing
created); the sweep and all its jobs are committed in one transaction, then each job is published.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status
from fastapi.exceptions import RequestValidationError

from api.comparison_schemas import (
    ExecutionOut,
    FusedGroupOut,
    GridPointOut,
    SweepCreatedOut,
    SweepOut,
    SweepPage,
    SweepSummaryOut,
)
from api.dependencies import CeleryDep, PageCursor, PageLimit, SettingsDep, StoreDep, normalize_job_id
from api.errors import DATABASE_DOWN, query_error
from api.limits import BODY_REFUSED
from api.schemas import ErrorOut
from api.statistics_schemas import SeedBandOut, SweepCurvesOut, TunedOut
from core.compare import higher_is_better
from core.queue import publish_group, publish_job
from core.spec import JobSpec
from core.store import InvalidCursor, Store, SweepView
from core.sweeps import (
    TERMINAL_STATUSES,
    JobOutcome,
    SweepRequest,
    SweepValidationError,
    TuningError,
    aggregate,
    expand_sweep,
    fused_groups,
    how_executed,
    status_counts,
    tuned_comparison,
)
from core.sweeps.curves import seed_band

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/sweeps", tags=["sweeps"])

SweepId = Annotated[str, Path(max_length=64, description="the sweep's id (UUID hex)")]
Arm = Annotated[
    str | None,
    Query(
        max_length=64,
        description="a grid axis whose values are the arms compared at their tuned best (e.g. batch_norm)",
    ),
]
Tune = Annotated[
    list[Annotated[str, Query(max_length=64)]],
    Query(
        max_length=8,
        description="grid axes each arm takes its best value of (repeat `tune=`); with `arm`, every other "
        "grid axis must be tuned",
    ),
]
CurveMetric = Annotated[str, Query(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="the series")]
CurvePoints = Annotated[int, Query(ge=10, le=2000, description="steps per grid point at most")]
ArmBaseline = Annotated[
    str | None,
    Query(
        max_length=256,
        description="the arm (a JSON value of `arm`, e.g. `false`) speedups are taken against; default: the "
        "grid's first value",
    ),
]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "no sweep with this id"}
}


def get_sweep_or_404(store: Store, sweep_id: str) -> SweepView:
    normalized = normalize_job_id(sweep_id)  # sweep ids are UUID hex like job ids
    sweep = store.get_sweep(normalized) if normalized is not None else None
    if sweep is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"sweep {sweep_id} not found")
    return sweep


def sweep_outcomes(store: Store, sweep_id: str) -> list[JobOutcome]:
    """The sweep's jobs in creation (grid) order, as aggregation reads them."""
    outcomes = []
    for job in store.sweep_jobs(sweep_id):
        summary = job.summary
        outcomes.append(
            JobOutcome(
                job_id=job.id,
                status=job.status,
                spec=job.spec,
                final_accuracy=summary.final_val_accuracy if summary else None,
                best_accuracy=summary.best_val_accuracy if summary else None,
                steps_to_target=summary.steps_to_target if summary else None,
                steps_run=job.progress.step if job.progress is not None else None,
            )
        )
    return outcomes


def _summary_out(sweep: SweepView, job_statuses: Mapping[str, str]) -> SweepSummaryOut:
    return SweepSummaryOut(
        id=sweep.id,
        name=sweep.name,
        created_at=sweep.created_at,
        size=sweep.size,
        base=JobSpec.model_validate(sweep.base),
        grid=sweep.grid,
        seeds=sweep.seeds,
        execution=_execution_out(sweep, job_statuses),
        status_counts=status_counts(job_statuses.values()),
    )


def _execution_out(sweep: SweepView, job_statuses: Mapping[str, str]) -> ExecutionOut:
    """How the sweep's jobs run, each fused group and the separate jobs with their jobs counted by status
    (`job_statuses`: status by job id)."""
    used, note = how_executed(sweep.execution, [group.size for group in sweep.fused_groups], sweep.size)
    grouped = {job_id for group in sweep.fused_groups for job_id in group.job_ids}
    separate = [job_id for job_id in sweep.job_ids if job_id not in grouped]
    return ExecutionOut(
        requested=sweep.execution,
        used=used,
        note=note,
        fused_groups=[
            FusedGroupOut(
                id=group.id,
                size=group.size,
                job_ids=group.job_ids,
                status_counts=status_counts(job_statuses[job_id] for job_id in group.job_ids),
            )
            for group in sweep.fused_groups
        ],
        separate_job_ids=separate,
        separate_status_counts=status_counts(job_statuses[job_id] for job_id in separate),
    )


def _tuned_out(
    sweep: SweepView, outcomes: Sequence[JobOutcome], arm: str, tune: Sequence[str], baseline: str | None
) -> TunedOut:
    """The sweep's arms compared at their tuned best; 422 naming the query parameter that does not fit."""
    if arm not in sweep.grid:
        raise query_error("arm", arm, f"the arm must be a grid axis of the sweep ({', '.join(sweep.grid)})")
    for axis in tune:
        if axis not in sweep.grid:
            raise query_error("tune", axis, f"{axis} is not a grid axis of the sweep")
    untuned = [axis for axis in sweep.grid if axis != arm and axis not in tune]
    if untuned:
        raise query_error(
            "tune", list(tune), f"every grid axis but the arm must be tuned: add tune={untuned[0]}"
        )
    baseline_value = None
    if baseline is not None:
        try:
            baseline_value = json.loads(baseline)
        except ValueError as error:
            raise query_error("baseline", baseline, "the baseline is a JSON value (e.g. false)") from error
    else:
        baseline_value = sweep.grid[arm][0]
    try:
        tuned = tuned_comparison(outcomes, arm, tune, baseline_value)
    except TuningError as error:
        raise query_error(error.field, baseline if error.field == "baseline" else arm, str(error)) from error
    return TunedOut.model_validate(tuned)


def _sweep_out(
    store: Store,
    sweep: SweepView,
    arm: str | None = None,
    tune: Sequence[str] = (),
    baseline: str | None = None,
) -> SweepOut:
    outcomes = sweep_outcomes(store, sweep.id)
    if arm is None and (tune or baseline is not None):
        raise query_error("arm", None, "`tune` and `baseline` need an `arm`")
    tuned = None if arm is None else _tuned_out(sweep, outcomes, arm, tune, baseline)
    points = aggregate(outcomes, list(sweep.grid))
    # The statuses just read, not those read with the sweep: the group counts agree with `status_counts`.
    job_statuses = {outcome.job_id: outcome.status for outcome in outcomes}
    return SweepOut(
        **_summary_out(sweep, job_statuses).model_dump(),
        job_ids=sweep.job_ids,
        done=sum(outcome.status in TERMINAL_STATUSES for outcome in outcomes),
        points=[GridPointOut.model_validate(point) for point in points],
        tuned=tuned,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SweepCreatedOut,
    summary="Submit a sweep: every grid point × every seed becomes a job",
    responses={
        **BODY_REFUSED,
        **DATABASE_DOWN,
    },
)
def submit_sweep(
    sweep: SweepRequest, store: StoreDep, celery_app: CeleryDep, settings: SettingsDep
) -> SweepCreatedOut:
    """422 names the grid point and field of every invalid point, or the size over the cap
    (`max_sweep_size`); then nothing is created. With `execution: fused` the jobs that can train together
    are split into fused groups (`max_fused_group_size` at most), each published as one task; every other
    job is published as its own task. A broker that is down loses none of them (the sweeper publishes
    them once it answers)."""
    try:
        jobs = expand_sweep(sweep, settings.max_sweep_size)
    except SweepValidationError as invalid:
        raise RequestValidationError(invalid.errors) from invalid
    specs = [job.spec for job in jobs]
    created = store.create_sweep(
        sweep.name,
        sweep.base,
        sweep.grid,
        sweep.replicate_seeds(),
        sweep.execution,
        specs,
        fused_groups(
            specs, sweep.execution, settings.max_fused_group_size, settings.max_fused_gpu_group_size
        ),
    )
    device_of = {job_id: spec.device for job_id, spec in zip(created.job_ids, specs, strict=True)}
    for group in created.fused_groups:
        try:
            publish_group(celery_app, group.job_ids, device_of[group.job_ids[0]])
            for job_id in group.job_ids:
                store.mark_enqueued(job_id)
        except Exception as error:  # whatever the transport raised, the sweeper retries
            logger.warning("sweep %s: group %s stored but not yet published: %s", created.id, group.id, error)
    grouped = {job_id for group in created.fused_groups for job_id in group.job_ids}
    for job_id in created.job_ids:
        if job_id in grouped:
            continue
        try:
            publish_job(celery_app, job_id, device_of[job_id])
            store.mark_enqueued(job_id)
        except Exception as error:  # whatever the transport raised, the sweeper retries
            logger.warning("sweep %s: job %s stored but not yet published: %s", created.id, job_id, error)
    return SweepCreatedOut(id=created.id, size=created.size, job_ids=created.job_ids)


@router.get(
    "",
    status_code=status.HTTP_200_OK,
    response_model=SweepPage,
    summary="List sweeps, newest first",
    responses=DATABASE_DOWN,
)
def list_sweeps(
    store: StoreDep,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> SweepPage:
    try:
        sweeps, next_cursor = store.list_sweeps(limit=limit, cursor=cursor)
    except InvalidCursor as error:
        raise query_error("cursor", cursor, str(error)) from error
    return SweepPage(
        items=[_summary_out(sweep, sweep.job_statuses) for sweep in sweeps], next_cursor=next_cursor
    )


@router.get(
    "/{sweep_id}",
    status_code=status.HTTP_200_OK,
    response_model=SweepOut,
    summary="Read a sweep: status counts and one row per grid point aggregated over seeds",
    responses={**NOT_FOUND, **DATABASE_DOWN},
)
def read_sweep(
    sweep_id: SweepId,
    store: StoreDep,
    arm: Arm = None,
    tune: Tune = [],  # noqa: B006 (FastAPI copies a query default; it is never mutated)
    baseline: ArmBaseline = None,
) -> SweepOut:
    """Per grid point: n, mean, sample std and the mean's 95% Student t interval over seeds of final and
    best validation accuracy and of steps to the spec's target (over the seeds that have the figure), and
    how many jobs are done, diverged, and met the target.

    With `arm` (e.g. `arm=batch_norm&tune=learning_rate&baseline=false`), `tuned` compares the arms best
    against best: each at the setting of the tuned axes with the fewest mean steps to target among those
    where every seed reached it (else the best mean final accuracy), the choice shown; the speedup against
    the baseline arm is a ratio of mean steps with a bootstrap interval over paired seeds (marked as a lower
    bound where a baseline seed never got there), the final accuracy a paired difference with its t
    interval, each with a verdict only where the interval excludes no difference."""
    return _sweep_out(store, get_sweep_or_404(store, sweep_id), arm, tune, baseline)


@router.get(
    "/{sweep_id}/curves",
    status_code=status.HTTP_200_OK,
    response_model=SweepCurvesOut,
    summary="A sweep's learning curves: per grid point the mean over seeds with its 95% band",
    responses={**NOT_FOUND, **DATABASE_DOWN},
)
def read_sweep_curves(
    sweep_id: SweepId,
    store: StoreDep,
    metric: Annotated[
        str, Query(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="the series")
    ] = "val_accuracy",
    max_points: Annotated[int, Query(ge=10, le=2000, description="steps per grid point at most")] = 200,
) -> SweepCurvesOut:
    """Per grid point, step by step: how many seeds have a value, their mean, and the mean's 95% Student t
    interval. Seeds whose points fall on different steps (runs stopped at their target at different steps)
    are binned over equal step ranges; a seed that diverged or already stopped is not counted at a step."""
    sweep = get_sweep_or_404(store, sweep_id)
    outcomes = sweep_outcomes(store, sweep.id)
    read = store.read_series_with_crossings(
        [outcome.job_id for outcome in outcomes], metric, max_points, None, higher_is_better(metric)
    )
    bands = []
    for point in aggregate(outcomes, list(sweep.grid)):
        band = seed_band([(read[job_id].steps, read[job_id].values) for job_id in point.job_ids], max_points)
        bands.append(
            SeedBandOut.model_validate({"point": point.point, "job_ids": point.job_ids, **vars(band)})
        )
    return SweepCurvesOut(metric=metric, points=bands)


@router.post(
    "/{sweep_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SweepOut,
    summary="Cancel every job of the sweep that has not finished",
    responses={
        **NOT_FOUND,
        409: {"model": ErrorOut, "description": "every job of the sweep has already finished"},
        **DATABASE_DOWN,
    },
)
def cancel_sweep(sweep_id: SweepId, store: StoreDep) -> SweepOut:
    """Queued jobs never start; running ones stop within a few seconds (cooperatively, like a job cancel)."""
    sweep = get_sweep_or_404(store, sweep_id)
    unfinished = [job for job in store.sweep_jobs(sweep.id) if not job.is_terminal]
    if not unfinished:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"every job of sweep {sweep.id} has finished")
    for job in unfinished:
        store.request_cancel(job.id)
    return _sweep_out(store, sweep)
