"""A job's loss-landscape probes (Santurkar et al. 2018, Fig. 4): `GET /v1/jobs/{id}/landscape` as JSON and
`GET /v1/jobs/{id}/plots/landscape` as a picture, PNG or SVG.

The probes are taken by the training core every `landscape_every` steps (see `core.ml.landscape`).
Drawing is CPU work in a plain `def` route, so it runs in FastAPI's thread pool and never blocks the loop.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from api.dependencies import JobDep, StoreDep
from api.errors import DATABASE_DOWN
from api.routes.jobs import NOT_FOUND
from api.routes.plots import (
    IMAGE,
    LABEL_LENGTH,
    ImageFormatQuery,
    image_response,
    no_bn_first,
    nothing_recorded,
)
from api.schemas import ErrorOut, LandscapeOut, LandscapeProbeOut
from core.plots import LandscapeSeries, landscape_panels
from core.store import JobView, LandscapeView, StoreInterface

router = APIRouter(prefix="/v1/jobs", tags=["landscape"])


@router.get(
    "/{job_id}/landscape",
    status_code=status.HTTP_200_OK,
    response_model=LandscapeOut,
    summary="Loss landscape along the gradient at each probe step (Santurkar et al. 2018, Fig. 4)",
    responses={**NOT_FOUND, **DATABASE_DOWN},
)
def read_landscape(job: JobDep, store: StoreDep) -> LandscapeOut:
    """Per probe step: the loss at each step size η along the gradient, their range, gradient
    predictiveness, effective β-smoothness, ‖g‖ and the relative gradient change. Lower is smoother.
    Empty for a job run with `landscape_every` = 0 (or not probed yet)."""
    return LandscapeOut(
        job_id=job.id,
        probes=[LandscapeProbeOut.model_validate(probe) for probe in store.read_landscape(job.id)],
    )


@router.get(
    "/{job_id}/plots/landscape",
    response_class=Response,
    summary="Loss landscape, gradient predictiveness and β-smoothness over training (Santurkar Fig. 4)",
    responses={
        **IMAGE,
        404: {"model": ErrorOut, "description": "no such job, or it recorded no landscape probes"},
    },
)
def landscape_plot(
    job: JobDep,
    store: StoreDep,
    compare_with: Annotated[
        str | None,
        Query(max_length=64, description="a second job drawn in the same panels (no BN first, then BN)"),
    ] = None,
    image_format: ImageFormatQuery = "png",
) -> Response:
    """Three panels side by side, as in Santurkar et al.'s Fig. 4: (a) the band of losses over the step
    sizes probed along the gradient at each probe step, (b) gradient predictiveness, (c) effective
    β-smoothness; lower is smoother. Needs jobs run with `landscape_every` > 0."""
    series = [_landscape_series(store, shown) for shown in no_bn_first(store, job, compare_with)]
    return image_response(landscape_panels(series, image_format), image_format)


def _landscape_series(store: StoreInterface, job: JobView) -> LandscapeSeries:
    probes = store.read_landscape(job.id)
    if not probes:
        raise nothing_recorded(job, "landscape probes", "landscape_every")
    return LandscapeSeries(
        label=_label(job),
        steps=[probe.step for probe in probes],
        lowest_loss=[_lowest(probe) for probe in probes],
        highest_loss=[_highest(probe) for probe in probes],
        gradient_predictiveness=[probe.gradient_predictiveness for probe in probes],
        beta_smoothness=[probe.beta_smoothness for probe in probes],
    )


def _label(job: JobView) -> str:
    """What sets a job apart in these pictures: BN, activation, learning rate, seed; its name when short."""
    spec = job.spec
    label = (
        f"{'BN' if spec.get('batch_norm') else 'no BN'}, {spec['architecture']['activation']}, "
        f"lr {spec['learning_rate']:g}, seed {spec['seed']}"
    )
    return f"{label}: {job.name}" if job.name and len(label) + len(job.name) + 2 <= LABEL_LENGTH else label


def _lowest(probe: LandscapeView) -> float | None:
    finite = [loss for loss in probe.losses if loss is not None]
    return min(finite) if finite else None


def _highest(probe: LandscapeView) -> float | None:
    """None when a loss along the way was not finite: the band has no top there."""
    if not probe.losses or any(loss is None for loss in probe.losses):
        return None
    return max(loss for loss in probe.losses if loss is not None)
