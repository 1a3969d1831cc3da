"""`/v1/sweeps`: submit a grid of specs × seeds, list sweeps, read one aggregated per grid point, cancel one.

The whole product is validated before anything is stored (one bad point → 422 naming it, nothing
created); the sweep and all its jobs are committed in one transaction, then each job is published.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Annotated, Any

from celery import Celery
from fastapi import APIRouter, HTTPException, Path, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

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
from api.idempotency import IDEMPOTENCY_CONFLICT, IdempotencyKey, answer_once
from api.limits import BODY_REFUSED
from api.schemas import ErrorOut
from core.queue import publish_group, publish_job
from core.settings import Settings
from core.spec import JobSpec, with_unstorable_text_replaced
from core.store import InvalidCursor, Store, SweepView
from core.sweeps import (
    TERMINAL_STATUSES,
    JobOutcome,
    SweepRequest,
    SweepValidationError,
    aggregate,
    expand_sweep,
    fused_groups,
    how_executed,
    status_counts,
)

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/sweeps", tags=["sweeps"])

SweepId = Annotated[str, Path(max_length=64, description="the sweep's id (UUID hex)")]
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
            )
        )
    return outcomes


def _summary_out(sweep: SweepView, job_statuses: Mapping[str, str]) -> SweepSummaryOut:
    return SweepSummaryOut(
        id=sweep.id,
        name=sweep.name,
        created_at=sweep.created_at,
        size=sweep.size,
        base=JobSpec.model_validate(with_unstorable_text_replaced(sweep.base)),
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


def _sweep_out(store: Store, sweep: SweepView) -> SweepOut:
    outcomes = sweep_outcomes(store, sweep.id)
    points = aggregate(outcomes, list(sweep.grid))
    # The statuses just read, not those read with the sweep: the group counts agree with `status_counts`.
    job_statuses = {outcome.job_id: outcome.status for outcome in outcomes}
    return SweepOut(
        **_summary_out(sweep, job_statuses).model_dump(),
        job_ids=sweep.job_ids,
        done=sum(outcome.status in TERMINAL_STATUSES for outcome in outcomes),
        points=[GridPointOut.model_validate(point) for point in points],
    )


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
    are split into fused groups (`max_fused_group_size` at most), each published as one task; every other
    job is published as its own task. A broker that is down loses none of them (the sweeper publishes
    them once it answers). A retry with the same `Idempotency-Key` and body within 24 h answers the first
    answer (the same sweep) and creates nothing."""
    return answer_once(
        store,
        "sweeps",
        idempotency_key,
        sweep,
        lambda: create_and_publish(sweep, store, celery_app, settings),
    )


def create_and_publish(
    sweep: SweepRequest, store: Store, celery_app: Celery, settings: Settings
) -> SweepCreatedOut:
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
def read_sweep(sweep_id: SweepId, store: StoreDep) -> SweepOut:
    """Per grid point: mean ± sample std over seeds of final and best validation accuracy and of steps to
    the spec's target (over the seeds that have the figure), and how many jobs are done, diverged, and
    met the target."""
    return _sweep_out(store, get_sweep_or_404(store, sweep_id))


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
