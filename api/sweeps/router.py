"""`/v1/sweeps`: submit a grid of specs × seeds, list sweeps, read one aggregated per grid point, cancel one,
label one (tags, note, archived) or delete it with all its jobs.

What the routes do behind HTTP (expand, store, publish; aggregate) is `api.sweeps.service`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.dependencies import CeleryDep, PageCursor, PageLimit, SettingsDep, StoreDep
from api.errors import DATABASE_DOWN, error_answer, readable_cursor
from api.housekeeping import (
    STILL_RUNNING,
    ArchivedFilter,
    LabelsIn,
    TagFilter,
    archived_choice,
    stop_then_delete,
)
from api.idempotency import IDEMPOTENCY_CONFLICT, IdempotencyKey, answer_once
from api.limits import BODY_REFUSED
from api.schemas import ErrorOut
from api.statistics_schemas import SweepCurvesOut
from api.sweeps.schemas import SweepCancelledOut, SweepCreatedOut, SweepOut, SweepPage
from api.sweeps.service import create_and_publish, get_sweep_or_404, summary_out, sweep_curves, sweep_out
from core.sweeps import SweepRequest

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
ArmBaseline = Annotated[
    str | None,
    Query(
        max_length=256,
        description="the arm (a JSON value of `arm`, e.g. `false`; a bare word is a string, e.g. `none` for "
        "the normalization axis) speedups are taken against; default: the grid's first value",
    ),
]
CurveMetric = Annotated[str, Query(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="the series")]
CurvePoints = Annotated[int, Query(ge=10, le=2000, description="steps per grid point at most")]
NOT_FOUND = error_answer(404, "no sweep with this id")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SweepCreatedOut,
    summary="Submit a sweep: every grid point × every seed becomes a job",
    responses={
        **BODY_REFUSED,
        **IDEMPOTENCY_CONFLICT,
        **DATABASE_DOWN,
    },
)
def submit_sweep(
    sweep: SweepRequest,
    store: StoreDep,
    celery_app: CeleryDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> BaseModel | JSONResponse:
    """422 names the grid point and field of every invalid point, or the size over the cap
    (`max_sweep_size`); then nothing is created. With `execution: fused` the jobs that can train together
    are split into fused groups, each published as one task — of `max_fused_group_size` at most, or
    `max_fused_gpu_group_size` for specs that a GPU will train (`cuda`, or `auto` while a live worker on
    the default queue has a GPU) and no more than fit its memory (`core.group_sizes`); every other
    job is published as its own task. A broker that is down loses none of them (the republisher publishes
    them once it answers). A retry with the same `Idempotency-Key` and body within 24 h answers the first
    answer (the same sweep) and creates nothing."""

    def create() -> SweepCreatedOut:
        created = create_and_publish(sweep, store, celery_app, settings)
        return SweepCreatedOut(id=created.id, size=created.size, job_ids=created.job_ids)

    return answer_once(store, "sweeps", idempotency_key, sweep, create)


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
    tag: TagFilter = None,
    archived: ArchivedFilter = "false",
) -> SweepPage:
    with readable_cursor(cursor):
        sweeps, next_cursor = store.list_sweeps(
            limit=limit, cursor=cursor, tag=tag, archived=archived_choice(archived)
        )
    return SweepPage(
        items=[summary_out(sweep, sweep.job_statuses) for sweep in sweeps], next_cursor=next_cursor
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
    the baseline arm is a ratio of mean steps with a bootstrap interval over paired seeds (none below five
    seeds; marked as a lower bound where a baseline seed never got there), the final accuracy a paired
    difference with its t interval, each with a verdict only where the interval excludes no difference."""
    return sweep_out(store, get_sweep_or_404(store, sweep_id), arm, tune, baseline)


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
    metric: CurveMetric = "val_accuracy",
    max_points: CurvePoints = 200,
) -> SweepCurvesOut:
    """Per grid point, step by step: how many seeds have a value, their mean, and the mean's 95% Student t
    interval. Seeds whose points fall on different steps (runs stopped at their target at different steps)
    are binned over equal step ranges; a seed that diverged or already stopped is not counted at a step."""
    return sweep_curves(store, get_sweep_or_404(store, sweep_id), metric, max_points)


@router.post(
    "/{sweep_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SweepCancelledOut,
    summary="Cancel every job of the sweep that has not finished",
    responses={
        **NOT_FOUND,
        409: {"model": ErrorOut, "description": "every job of the sweep has already finished"},
        **DATABASE_DOWN,
    },
)
def cancel_sweep(sweep_id: SweepId, store: StoreDep) -> SweepCancelledOut:
    """Queued jobs never start; running ones stop within a few seconds (cooperatively, like a job cancel).
    `cancel_requested` counts the jobs asked to stop: the status counts that follow already show the
    queued ones cancelled."""
    sweep = get_sweep_or_404(store, sweep_id)
    unfinished = [job for job in store.sweep_jobs(sweep.id) if not job.is_terminal]
    if not unfinished:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"every job of sweep {sweep.id} has finished")
    for job in unfinished:
        store.request_cancel(job.id)
    return SweepCancelledOut(**sweep_out(store, sweep).model_dump(), cancel_requested=len(unfinished))


@router.patch(
    "/{sweep_id}",
    status_code=status.HTTP_200_OK,
    response_model=SweepOut,
    summary="Set a sweep's tags, note or archived flag (archiving hides its jobs from the jobs list too)",
    responses={**NOT_FOUND, **BODY_REFUSED, **DATABASE_DOWN},
)
def label_sweep(sweep_id: SweepId, labels: LabelsIn, store: StoreDep) -> SweepOut:
    sweep = get_sweep_or_404(store, sweep_id)
    store.label_sweep(sweep.id, labels.tags, labels.note, labels.archived)
    return sweep_out(store, get_sweep_or_404(store, sweep.id))


@router.delete(
    "/{sweep_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a sweep with all its jobs and their data (running jobs are cancelled first)",
    responses={**NOT_FOUND, **STILL_RUNNING, **DATABASE_DOWN},
)
def delete_sweep(sweep_id: SweepId, store: StoreDep, settings: SettingsDep) -> Response:
    """Queued jobs are cancelled; running ones are cancelled and the delete waits (up to
    `delete_wait_seconds`) for their workers to stop. Their open event streams end."""
    sweep = get_sweep_or_404(store, sweep_id)

    def unfinished() -> list[str]:
        return [job.id for job in store.sweep_jobs(sweep.id) if not job.is_terminal]

    stop_then_delete(
        f"sweep {sweep.id}",
        unfinished,
        store.request_cancel,
        lambda: store.delete_sweep(sweep.id),
        settings.delete_wait_seconds,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
