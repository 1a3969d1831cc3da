"""Response schemas of `/v1/sweeps`, shaped as DESIGN.md shows them. NaN and inf never reach JSON: they
become null.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from api.schemas import ResponseModel
from api.statistics_schemas import StatOut, TunedOut
from core.spec import JobSpec
from core.sweeps import Execution, ExecutionUsed


class SweepCreatedOut(BaseModel):
    id: str
    size: int
    job_ids: list[str]


class GridPointOut(ResponseModel):
    """One grid point aggregated over its seeds."""

    point: dict[str, Any]
    job_ids: list[str]
    seeds: list[int]
    status_counts: dict[str, int]
    done: int = Field(description="jobs that finished, whatever the outcome")
    diverged: int
    reached_target: int = Field(description="jobs that met their spec's target_accuracy")
    final_accuracy: StatOut
    best_accuracy: StatOut
    steps_to_target: StatOut


class FusedGroupOut(BaseModel):
    """Jobs that one task trains together as stacked models (and reports, each, as its own job)."""

    id: str
    size: int
    job_ids: list[str] = Field(description="in the order the group trains them")
    status_counts: dict[str, int] = Field(
        description="the group's jobs by status (every status, zero included)"
    )


class ExecutionOut(BaseModel):
    """How the sweep asked its jobs to run, and how each of them does."""

    requested: Execution
    used: ExecutionUsed = Field(
        description="fused: every job is in a fused group; separate: every job is a task of its own; "
        "mixed: fused groups plus jobs that fuse with no other"
    )
    note: str
    fused_groups: list[FusedGroupOut] = Field(description="one Celery task each")
    separate_job_ids: list[str] = Field(description="jobs that run one task each")
    separate_status_counts: dict[str, int] = Field(
        description="those jobs by status (every status, zero included)"
    )


class SweepSummaryOut(BaseModel):
    id: str
    name: str
    created_at: datetime
    size: int
    base: JobSpec
    grid: dict[str, list[Any]]
    seeds: list[int]
    execution: ExecutionOut
    status_counts: dict[str, int] = Field(
        description="the sweep's jobs by status (every status, zero included)"
    )
    tags: list[str] = Field(default_factory=list, description="set with PATCH; filter lists with `?tag=`")
    note: str = ""
    archived: bool = Field(False, description="archived sweeps (and their jobs) are left out of lists")


class SweepProgressOut(BaseModel):
    """How far the sweep's training has got, over all its jobs."""

    steps_done: int = Field(
        description="training steps run; a finished job (whatever its outcome) counts its whole budget"
    )
    steps_total: int = Field(description="the step budgets of all the sweep's jobs")
    model_steps_per_second: float = Field(
        description="the latest training rate summed over the running jobs (each model of a fused group "
        "counts)"
    )
    eta_seconds: float | None = Field(
        description="steps left at that rate; null while nothing is training, 0 once nothing is left"
    )


class SweepOut(SweepSummaryOut):
    job_ids: list[str] = Field(description="in grid order, seeds innermost")
    done: int
    points: list[GridPointOut]
    progress: SweepProgressOut
    tuned: TunedOut | None = Field(
        None,
        description="with `arm` (and `tune`) in the query: each arm at its best setting of the tuned axes, "
        "compared with the baseline arm's best; null otherwise",
    )


class SweepCancelledOut(SweepOut):
    cancel_requested: int = Field(
        description="the jobs that had not finished and were asked to stop (queued ones are cancelled at "
        "once, running ones stop within a few seconds)"
    )


class SweepPage(BaseModel):
    items: list[SweepSummaryOut]
    next_cursor: str | None = Field(None, description="pass as `cursor` for the next page; null on the last")
