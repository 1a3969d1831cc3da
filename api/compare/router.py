"""`/v1/compare`: jobs side by side — what differs in their specs, final and best values, steps and seconds
to a target, speedup against a baseline, and the aligned, downsampled series.

The comparison a query asks for is loaded by `api.compare.loading` (which its plot, in `api.plots`, shares).
Plain `def` routes: the store is synchronous, so FastAPI runs them in its thread pool.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import StreamingResponse

from api.compare.loading import Comparison, ComparisonDep
from api.compare.schemas import CompareOut, CompareRowOut
from api.errors import DATABASE_DOWN, query_error
from api.exports import FormatQuery, csv_answer, csv_response, flat_fields, table_lines, wants_csv
from api.schemas import ErrorOut, Series
from api.statistics_schemas import TunedOut
from core.compare import higher_is_better
from core.gradient_ics import ics_columns
from core.sweeps import TuningError, tuned_comparison, value_at

router = APIRouter(prefix="/v1/compare", tags=["compare"])

SPEC_FIELD = r"^[a-z_]+(\.[a-z_]+)?$"
Arm = Annotated[
    str | None,
    Query(
        max_length=64,
        pattern=SPEC_FIELD,
        description="a spec field whose values split the jobs into arms (e.g. batch_norm), compared over "
        "matched seeds; the baseline job's arm is the baseline arm",
    ),
]
Tune = Annotated[
    list[Annotated[str, Query(max_length=64, pattern=SPEC_FIELD)]],
    Query(max_length=8, description="spec fields each arm takes its best value of (repeat `tune=`)"),
]

JOBS_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "one or more ids name no job; `detail` lists them"},
    **DATABASE_DOWN,
}


@router.get(
    "",
    status_code=status.HTTP_200_OK,
    response_model=CompareOut,
    summary="Compare jobs: spec differences, final/best, steps to target, speedup, aligned series",
    responses={
        **csv_answer("the comparison as JSON, or with `format=csv` (or `Accept: text/csv`) its jobs table"),
        **JOBS_NOT_FOUND,
    },
)
def compare_jobs(
    comparison: ComparisonDep,
    request: Request,
    arm: Arm = None,
    tune: Tune = [],  # noqa: B006 (FastAPI copies a query default; it is never mutated)
    answer_format: Annotated[FormatQuery, Query(alias="format")] = None,
) -> CompareOut | StreamingResponse:
    """Finished jobs come first, then running, cancelled, diverged and failed ones; within a group the
    fewest steps to target, then the best final value. The speedup is the baseline's steps to target ÷
    this job's; when the baseline never got there its step budget is used and the speedup is flagged as
    a lower bound; when this job never got there it is null.

    With `arm` (e.g. `arm=batch_norm`), `arms` groups the jobs by that field and compares each arm with the
    baseline job's over the seeds both ran: the paired difference of the final value with its Student t
    interval, the speedup as a ratio of mean steps to target with a bootstrap interval (none below five
    seeds), and a verdict only where the interval excludes no difference. Within an arm the jobs may differ
    only in seed and in the `tune` fields, of which each arm takes its best setting (fewest mean steps to
    target where every seed got there, else best mean final value).

    `ics` summarises each job's gradient-based ICS per hidden layer (Santurkar et al. 2018): the medians of
    ‖G − G′‖₂ and cos(G, G′) over its telemetry steps (null for a job run without telemetry).

    As CSV (`format=csv` or `Accept: text/csv`): one line per job with the columns of `jobs`, each
    differing spec field as a `spec.<field>` column and the ICS medians as `ics.layer<N>.<figure>` columns;
    the series, landscape ratios and arms are JSON only."""
    if wants_csv(request, answer_format):
        return csv_response(_jobs_table(comparison), "comparison.csv")
    return CompareOut(
        metric=comparison.metric,
        target=comparison.target,
        baseline=comparison.baseline,
        jobs=[CompareRowOut.model_validate(row) for row in comparison.rows],
        series={
            job_id: Series(steps=series.steps, values=series.values)
            for job_id, series in comparison.series.items()
        },
        arms=_arms(comparison, arm, tune),
    )


def _jobs_table(comparison: Comparison) -> Iterator[str]:
    rows = []
    for row in comparison.rows:
        answer = CompareRowOut.model_validate(row).model_dump(exclude={"landscape", "ics"})
        spec_diff = answer.pop("spec_diff")
        answer.update({f"spec.{field}": value for field, value in flat_fields(spec_diff).items()})
        answer.update(ics_columns(row.ics))
        rows.append(answer)
    columns = list(dict.fromkeys(column for answer in rows for column in answer))
    return table_lines(rows, columns)


def _arms(comparison: Comparison, arm: str | None, tune: list[str]) -> TunedOut | None:
    if arm is None:
        if tune:
            raise query_error("arm", None, "`tune` needs an `arm`")
        return None
    if not higher_is_better(comparison.metric):
        raise query_error("arm", arm, "arms compare a metric that improves upwards (an accuracy)")
    baseline = next(outcome for outcome in comparison.outcomes if outcome.job_id == comparison.baseline)
    try:
        tuned = tuned_comparison(comparison.outcomes, arm, tune, value_at(baseline.spec, arm))
    except TuningError as error:
        raise query_error(error.field, arm if error.field == "arm" else tune, str(error)) from error
    return TunedOut.model_validate(tuned)
