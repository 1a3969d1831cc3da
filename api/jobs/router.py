"""`/v1/jobs`: submit a training job, list and read jobs, their metrics, telemetry and loss-landscape probes,
cancel one, label one (tags, note, archived) or delete it. A job's event stream is in `api.events`, its
pictures in `api.plots`; the landscape probes are taken by the training core every `landscape_every` steps
(see `core.ml.landscape`).

Routes are plain `def`: the store is synchronous, so FastAPI runs them in its thread pool.
"""

from __future__ import annotations

from typing import Annotated, Any

from celery import Celery
from fastapi import APIRouter, Body, HTTPException, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, StringConstraints

from api.datasets.checks import check_user_datasets
from api.dependencies import (
    JOB_NOT_FOUND,
    CeleryDep,
    JobDep,
    LiveQueuesDep,
    PageCursor,
    PageLimit,
    PublicationMarksDep,
    SettingsDep,
    StoreDep,
    normalize_job_id,
)
from api.errors import DATABASE_DOWN, conflict, error_answer, query_error, readable_cursor
from api.exports import FormatQuery, csv_answer, csv_response, metric_lines, wants_csv
from api.housekeeping import (
    ArchivedFilter,
    LabelsIn,
    TagFilter,
    archived_choice,
    stop_then_delete,
)
from api.idempotency import IDEMPOTENCY_CONFLICT, IdempotencyKey, answer_once
from api.jobs.schemas import (
    PAPER_DIGITS_SPEC,
    JobOut,
    JobPage,
    JobStatus,
    LandscapeOut,
    LandscapeProbeOut,
    MetricsOut,
    TelemetryLayerOut,
    TelemetryOut,
)
from api.jobs.waiting import LiveQueues, job_out_with_waiting_for, jobs_out_with_waiting_for
from api.limits import BODY_REFUSED
from api.publication_marks import PublicationMarks
from api.publishing import publish_stored
from api.schemas import ErrorOut, Series
from core.results import METRIC_NAMES
from core.spec import JobSpec
from core.store import StoreInterface

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

MAX_POINTS = 10_000
MetricName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]

SPEC_EXAMPLES: dict[str, Any] = {
    "paper_digits_bn": {
        "summary": "The paper's digits MLP with batch norm",
        "description": "3×100 sigmoid, SGD at 0.1, batch 60: reaches 90% validation accuracy in ~70 steps.",
        "value": PAPER_DIGITS_SPEC,
    },
    "paper_digits_no_bn": {
        "summary": "Its twin without batch norm",
        "description": "The same net and seed without BN: never reaches 90% in 2000 steps.",
        "value": {**PAPER_DIGITS_SPEC, "batch_norm": False, "name": "plain-sigmoid"},
    },
    "minimal": {
        "summary": "Only the required fields",
        "value": {
            "architecture": {"kind": "mlp", "hidden": [100, 100, 100], "activation": "sigmoid"},
            "batch_norm": True,
            "learning_rate": 0.1,
            "dropout": 0.0,
        },
    },
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=JobOut,
    summary="Submit a training job",
    responses={
        **BODY_REFUSED,
        **IDEMPOTENCY_CONFLICT,
        **DATABASE_DOWN,
    },
)
def submit_job(
    spec: Annotated[JobSpec, Body(openapi_examples=SPEC_EXAMPLES)],
    store: StoreDep,
    celery_app: CeleryDep,
    live_queues: LiveQueuesDep,
    publication_marks: PublicationMarksDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Store the job, then hand it to a worker. A broker that is down does not lose the job: it stays
    `queued` and the republisher publishes it once the broker answers again. A retry with the same
    `Idempotency-Key` and body within 24 h answers the first answer (the same job) and creates nothing."""
    check_user_datasets(store, [spec], ("body", "dataset"))
    answer = answer_once(
        store,
        "jobs",
        idempotency_key,
        spec,
        lambda: create_and_publish(spec, store, celery_app, live_queues, publication_marks),
    )
    return encoded(answer, status.HTTP_201_CREATED)


def encoded(answer: BaseModel | Response, status_code: int) -> Response:
    """The answer as JSON, encoded here: FastAPI would validate a returned model against the route's
    `response_model` once more, in a second trip to the thread pool (a plain `def` route's answer is
    validated there). The model already is the response model, so the document is the same."""
    if isinstance(answer, Response):
        return answer
    return Response(answer.model_dump_json(), status_code, media_type="application/json")


def create_and_publish(
    spec: JobSpec,
    store: StoreInterface,
    celery_app: Celery,
    live_queues: LiveQueues,
    publication_marks: PublicationMarks,
) -> JobOut:
    job = store.create_job(spec)  # committed before publishing: no accepted job is ever lost
    publish_stored(store, celery_app, [job.id], spec.device, marks=publication_marks)
    return job_out_with_waiting_for(job, live_queues)


@router.get(
    "",
    status_code=status.HTTP_200_OK,
    response_model=JobPage,
    summary="List jobs, newest first",
    responses=DATABASE_DOWN,
)
def list_jobs(
    store: StoreDep,
    live_queues: LiveQueuesDep,
    status_filter: Annotated[JobStatus | None, Query(alias="status")] = None,
    sweep_id: Annotated[str | None, Query(max_length=64, description="a sweep's id (UUID hex)")] = None,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
    tag: TagFilter = None,
    archived: Annotated[
        ArchivedFilter | None,
        Query(
            description="false (default): leave archived jobs and the jobs of archived sweeps out; true: "
            "only those; all: both. With `sweep_id`, the default is all"
        ),
    ] = None,
) -> JobPage:
    sweep = None
    if sweep_id is not None:
        sweep = normalize_job_id(sweep_id)  # sweep ids are UUID hex like job ids
        if sweep is None:
            raise query_error("sweep_id", sweep_id, "not a sweep id (UUID hex)")
    if archived is None:
        archived = "all" if sweep is not None else "false"
    with readable_cursor(cursor):
        jobs, next_cursor = store.list_jobs(
            status=status_filter,
            sweep_id=sweep,
            limit=limit,
            cursor=cursor,
            tag=tag,
            archived=archived_choice(archived),
        )
    return JobPage(items=jobs_out_with_waiting_for(jobs, live_queues), next_cursor=next_cursor)


@router.get(
    "/{job_id}",
    status_code=status.HTTP_200_OK,
    response_model=JobOut,
    summary="Read one job: status, progress and summary",
    responses={**JOB_NOT_FOUND, **DATABASE_DOWN},
)
def read_job(job: JobDep, live_queues: LiveQueuesDep) -> JobOut:
    """`waiting_for` says why a queued job does not start when no live worker consumes its queue."""
    return job_out_with_waiting_for(job, live_queues)


@router.get(
    "/{job_id}/metrics",
    status_code=status.HTTP_200_OK,
    response_model=MetricsOut,
    summary="Metric series, downsampled to at most max_points per series; or every point as CSV",
    responses={
        **csv_answer(
            "the series as JSON, or with `format=csv` (or `Accept: text/csv`) every point, streamed"
        ),
        **JOB_NOT_FOUND,
        **DATABASE_DOWN,
    },
)
def read_metrics(
    job: JobDep,
    store: StoreDep,
    request: Request,
    name: Annotated[
        list[MetricName] | None,
        Query(
            max_length=32,
            description="repeat for several; the four standard series when absent (CSV: every series)",
        ),
    ] = None,
    max_points: Annotated[int, Query(ge=4, le=MAX_POINTS, description="at least 4; JSON only")] = 500,
    answer_format: Annotated[FormatQuery, Query(alias="format")] = None,
) -> MetricsOut | StreamingResponse:
    """As CSV (`job_id,name,step,value`, in step order) the answer holds every point at full resolution,
    however many: it is streamed from the store a chunk of steps at a time."""
    if wants_csv(request, answer_format):
        names = list(dict.fromkeys(name)) if name else None
        return csv_response(metric_lines(store, job.id, names), f"{job.id}-metrics.csv")
    names = list(dict.fromkeys(name)) if name else list(METRIC_NAMES)
    stored = store.read_metrics(job.id, names, max_points)
    # Every requested name is answered, empty when the job has no such points (yet).
    series = {
        metric: Series(steps=list(stored[metric][0]), values=list(stored[metric][1]))
        if metric in stored
        else Series(steps=[], values=[])
        for metric in names
    }
    return MetricsOut(job_id=job.id, series=series)


@router.get(
    "/{job_id}/telemetry",
    status_code=status.HTTP_200_OK,
    response_model=TelemetryOut,
    summary="Per-layer statistics of each nonlinearity's input over training (paper Fig. 1)",
    responses={**JOB_NOT_FOUND, **DATABASE_DOWN},
)
def read_telemetry(job: JobDep, store: StoreDep) -> TelemetryOut:
    return TelemetryOut(
        layers=[TelemetryLayerOut.model_validate(layer) for layer in store.read_telemetry(job.id)]
    )


@router.get(
    "/{job_id}/landscape",
    status_code=status.HTTP_200_OK,
    response_model=LandscapeOut,
    summary="Loss landscape along the gradient at each probe step (Santurkar et al. 2018, Fig. 4)",
    responses={**JOB_NOT_FOUND, **DATABASE_DOWN},
)
def read_landscape(job: JobDep, store: StoreDep) -> LandscapeOut:
    """Per probe step: the loss at each step size η along the gradient, their range, gradient
    predictiveness, effective β-smoothness, ‖g‖ and the relative gradient change. Lower is smoother.
    Empty for a job run with `landscape_every` = 0 (or not probed yet)."""
    return LandscapeOut(
        job_id=job.id,
        probes=[LandscapeProbeOut.model_validate(probe) for probe in store.read_landscape(job.id)],
    )


@router.post(
    "/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    summary="Cancel a job: a queued one never starts, a running one stops within a few seconds",
    responses={
        **JOB_NOT_FOUND,
        409: {"model": ErrorOut, "description": "the job has already finished"},
        **DATABASE_DOWN,
    },
)
def cancel_job(job: JobDep, store: StoreDep) -> JobOut:
    if job.is_terminal:
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail=f"job {job.id} has already finished ({job.status})"
        )
    after = store.request_cancel(job.id)
    if after is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"job {job.id} not found")
    return JobOut.model_validate(after)


@router.patch(
    "/{job_id}",
    status_code=status.HTTP_200_OK,
    response_model=JobOut,
    summary="Set a job's tags, note or archived flag",
    responses={**JOB_NOT_FOUND, **BODY_REFUSED, **DATABASE_DOWN},
)
def label_job(job: JobDep, labels: LabelsIn, store: StoreDep) -> JobOut:
    after = store.label_job(job.id, labels.tags, labels.note, labels.archived)
    if after is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"job {job.id} not found")
    return JobOut.model_validate(after)


@router.delete(
    "/{job_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a job with its metrics, telemetry, probes and checkpoint (cancelled first if running)",
    responses={
        **JOB_NOT_FOUND,
        **error_answer(
            409, "the job belongs to a sweep, or it did not stop within the wait after its cancel"
        ),
        **DATABASE_DOWN,
    },
)
def delete_job(job: JobDep, store: StoreDep, settings: SettingsDep) -> Response:
    """A queued job is cancelled; a running one is cancelled and the delete waits (up to
    `delete_wait_seconds`) for its worker to stop. A job of a sweep is deleted with its sweep
    (`DELETE /v1/sweeps/{id}`): 409. Its open event streams end."""
    if job.sweep_id is not None:
        raise conflict(f"job {job.id} belongs to sweep {job.sweep_id}: delete the sweep, or archive the job")

    def unfinished() -> list[str]:
        current = store.get_job(job.id)
        return [job.id] if current is not None and not current.is_terminal else []

    stop_then_delete(
        f"job {job.id}",
        unfinished,
        store.request_cancel,
        lambda: store.delete_job(job.id),
        settings.delete_wait_seconds,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
