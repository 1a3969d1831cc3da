"""`/v1/jobs/{id}/landscape`: a job's loss-landscape probes (Santurkar et al. 2018, Fig. 4) as JSON.

The probes are taken by the training core every `landscape_every` steps (see `core.ml.landscape`).
"""

from __future__ import annotations

from fastapi import APIRouter, status

from api.dependencies import JobDep, StoreDep
from api.routes.jobs import DATABASE_DOWN, NOT_FOUND
from api.schemas import LandscapeOut, LandscapeProbeOut

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
