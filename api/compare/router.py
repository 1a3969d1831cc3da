"""`/v1/compare`: jobs side by side — what differs in their specs, final and best values, steps and seconds
to a target, speedup against a baseline, and the aligned, downsampled series.

The comparison a query asks for is loaded by `api.compare.loading` (which its plot, in `api.plots`, shares).
Plain `def` routes: the store is synchronous, so FastAPI runs them in its thread pool.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from api.compare.loading import ComparisonDep
from api.compare.schemas import CompareOut, CompareRowOut
from api.errors import DATABASE_DOWN
from api.schemas import ErrorOut, Series

router = APIRouter(prefix="/v1/compare", tags=["compare"])

JOBS_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "one or more ids name no job; `detail` lists them"},
    **DATABASE_DOWN,
}


@router.get(
    "",
    status_code=status.HTTP_200_OK,
    response_model=CompareOut,
    summary="Compare jobs: spec differences, final/best, steps to target, speedup, aligned series",
    responses=JOBS_NOT_FOUND,
)
def compare_jobs(comparison: ComparisonDep) -> CompareOut:
    """Finished jobs come first, then running, cancelled, diverged and failed ones; within a group the
    fewest steps to target, then the best final value. The speedup is the baseline's steps to target ÷
    this job's; when the baseline never got there its step budget is used and the speedup is flagged as
    a lower bound; when this job never got there it is null."""
    return CompareOut(
        metric=comparison.metric,
        target=comparison.target,
        baseline=comparison.baseline,
        jobs=[CompareRowOut.model_validate(row) for row in comparison.rows],
        series={
            job_id: Series(steps=series.steps, values=series.values)
            for job_id, series in comparison.series.items()
        },
    )
