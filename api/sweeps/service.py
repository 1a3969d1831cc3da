"""What the `/v1/sweeps` routes do behind HTTP: expand, store and publish a sweep; read one back as its
jobs aggregated per grid point, with how each job is executed.

The whole product is validated before anything is stored (one bad point → 422 naming it, nothing
created); the sweep and all its jobs are committed in one transaction, then each job is published.
"""

from __future__ import annotations

from collections.abc import Mapping

from celery import Celery
from fastapi import HTTPException, status
from fastapi.exceptions import RequestValidationError

from api.dependencies import normalize_job_id
from api.publishing import publish_stored
from api.sweeps.schemas import ExecutionOut, FusedGroupOut, GridPointOut, SweepOut, SweepSummaryOut
from core.group_sizes import group_sizing
from core.settings import Settings
from core.spec import JobSpec
from core.store import StoreInterface, SweepView
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


def get_sweep_or_404(store: StoreInterface, sweep_id: str) -> SweepView:
    normalized = normalize_job_id(sweep_id)  # sweep ids are UUID hex like job ids
    sweep = store.get_sweep(normalized) if normalized is not None else None
    if sweep is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"sweep {sweep_id} not found")
    return sweep


def create_and_publish(
    sweep: SweepRequest, store: StoreInterface, celery_app: Celery, settings: Settings
) -> SweepView:
    """Expand the sweep (a 422 for every invalid point, or the size over `max_sweep_size`), store it with
    its jobs and fused groups, then publish each group as one task and every other job as its own. Groups
    are sized for the device that will train them, as the live workers say it (`core.group_sizes`)."""
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
            specs,
            sweep.execution,
            settings.max_fused_group_size,
            limit_for=group_sizing(settings, store.live_worker_devices(settings.lease_seconds)).limit_for,
        ),
    )
    device_of = {job_id: spec.device for job_id, spec in zip(created.job_ids, specs, strict=True)}
    for group in created.fused_groups:
        publish_stored(store, celery_app, group.job_ids, device_of[group.job_ids[0]], fused_group_id=group.id)
    grouped = {job_id for group in created.fused_groups for job_id in group.job_ids}
    for job_id in created.job_ids:
        if job_id not in grouped:
            publish_stored(store, celery_app, [job_id], device_of[job_id])
    return created


def sweep_outcomes(store: StoreInterface, sweep_id: str) -> list[JobOutcome]:
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


def summary_out(sweep: SweepView, job_statuses: Mapping[str, str]) -> SweepSummaryOut:
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


def sweep_out(store: StoreInterface, sweep: SweepView) -> SweepOut:
    outcomes = sweep_outcomes(store, sweep.id)
    points = aggregate(outcomes, list(sweep.grid))
    # The statuses just read, not those read with the sweep: the group counts agree with `status_counts`.
    job_statuses = {outcome.job_id: outcome.status for outcome in outcomes}
    return SweepOut(
        **summary_out(sweep, job_statuses).model_dump(),
        job_ids=sweep.job_ids,
        done=sum(outcome.status in TERMINAL_STATUSES for outcome in outcomes),
        points=[GridPointOut.model_validate(point) for point in points],
    )
