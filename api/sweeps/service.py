"""What the `/v1/sweeps` routes do behind HTTP: expand, store and publish a sweep; read one back as its
jobs aggregated per grid point, with how each job is executed.

The whole product is validated before anything is stored (one bad point → 422 naming it, nothing
created); the sweep and all its jobs are committed in one transaction, then each job is published.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from celery import Celery
from fastapi.exceptions import RequestValidationError

from api.datasets.checks import check_user_datasets
from api.dependencies import normalize_job_id
from api.errors import not_found, query_error
from api.publishing import publish_each, publish_stored
from api.statistics_schemas import SeedBandOut, SweepCurvesOut, TunedOut
from api.sweeps.schemas import (
    ExecutionOut,
    FusedGroupOut,
    GridPointOut,
    SweepOut,
    SweepProgressOut,
    SweepSummaryOut,
)
from core.compare import higher_is_better
from core.group_sizes import group_sizing
from core.settings import Settings
from core.spec import JobSpec, with_unstorable_text_replaced
from core.statistics import metric_range
from core.store import StoreInterface, SweepView
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


def get_sweep_or_404(store: StoreInterface, sweep_id: str) -> SweepView:
    normalized = normalize_job_id(sweep_id)  # sweep ids are UUID hex like job ids
    sweep = store.get_sweep(normalized) if normalized is not None else None
    if sweep is None:
        raise not_found(f"sweep {sweep_id}")
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
    check_user_datasets(store, [sweep.base], ("body", "base", "dataset"))
    check_user_datasets(store, specs, ("body", "grid", "dataset"))
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
    alone = [(job_id, device_of[job_id]) for job_id in created.job_ids if job_id not in grouped]
    publish_each(store, celery_app, alone)
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
                steps_run=job.progress.step if job.progress is not None else None,
            )
        )
    return outcomes


def summary_out(sweep: SweepView, job_statuses: Mapping[str, str]) -> SweepSummaryOut:
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
        tags=sweep.tags,
        note=sweep.note,
        archived=sweep.archived,
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


def tuned_out(
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
    if baseline is None:
        baseline_value = sweep.grid[arm][0]
    else:
        try:
            baseline_value = json.loads(baseline)
        except ValueError:
            baseline_value = baseline  # a bare word is a string: baseline=none for the normalization axis
    try:
        tuned = tuned_comparison(outcomes, arm, tune, baseline_value)
    except TuningError as error:
        raise query_error(error.field, baseline if error.field == "baseline" else arm, str(error)) from error
    return TunedOut.model_validate(tuned)


def sweep_out(
    store: StoreInterface,
    sweep: SweepView,
    arm: str | None = None,
    tune: Sequence[str] = (),
    baseline: str | None = None,
) -> SweepOut:
    """The sweep aggregated per grid point; with `arm`, its arms compared at their tuned best too."""
    outcomes = sweep_outcomes(store, sweep.id)
    if arm is None and (tune or baseline is not None):
        raise query_error("arm", None, "`tune` and `baseline` need an `arm`")
    tuned = None if arm is None else tuned_out(sweep, outcomes, arm, tune, baseline)
    points = aggregate(outcomes, list(sweep.grid))
    # The statuses just read, not those read with the sweep: the group counts agree with `status_counts`.
    job_statuses = {outcome.job_id: outcome.status for outcome in outcomes}
    return SweepOut(
        **summary_out(sweep, job_statuses).model_dump(),
        job_ids=sweep.job_ids,
        done=sum(outcome.status in TERMINAL_STATUSES for outcome in outcomes),
        points=[GridPointOut.model_validate(point) for point in points],
        progress=progress_out(store, sweep.id),
        tuned=tuned,
    )


def progress_out(store: StoreInterface, sweep_id: str) -> SweepProgressOut:
    progress = store.sweep_progress(sweep_id)
    return SweepProgressOut(
        steps_done=progress.steps_done,
        steps_total=progress.steps_total,
        model_steps_per_second=progress.model_steps_per_second,
        eta_seconds=progress.eta_seconds,
    )


def sweep_curves(store: StoreInterface, sweep: SweepView, metric: str, max_points: int) -> SweepCurvesOut:
    """Per grid point, the mean curve over its seeds with its 95% band (see `core.sweeps.curves`)."""
    outcomes = sweep_outcomes(store, sweep.id)
    read = store.read_series_with_crossings(
        [outcome.job_id for outcome in outcomes], metric, max_points, None, higher_is_better(metric)
    )
    bands = []
    for point in aggregate(outcomes, list(sweep.grid)):
        series = [(read[job_id].steps, read[job_id].values) for job_id in point.job_ids]
        band = seed_band(series, max_points, metric_range(metric))
        bands.append(SeedBandOut(point=point.point, job_ids=point.job_ids, **vars(band)))
    return SweepCurvesOut(metric=metric, points=bands)
