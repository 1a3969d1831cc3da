"""Response schemas of `/v1/jobs`: a job, a page of jobs, its metric series, telemetry and landscape probes,
shaped exactly as DESIGN.md shows them. NaN and inf never reach JSON: they become null.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field

from api.schemas import FiniteFloat, ResponseModel, Series
from core.spec import JobSpec, with_unstorable_text_replaced

JobStatus = Literal["queued", "running", "succeeded", "failed", "diverged", "cancelled"]

PAPER_DIGITS_SPEC: dict[str, Any] = {
    "architecture": {"kind": "mlp", "hidden": [100, 100, 100], "activation": "sigmoid"},
    "batch_norm": True,
    "learning_rate": 0.1,
    "dropout": 0.0,
    "name": "bn-sigmoid",
    "dataset": "digits",
    "optimizer": "sgd",
    "init": "default",
    "batch_size": 60,
    "steps": 2000,
    "eval_every": 10,
    "target_accuracy": 0.9,
    "telemetry_every": 100,
    "seed": 0,
    "device": "auto",
}
EXAMPLE_JOB_ID = "3f6c8e1a9b2d4c7e8f0a1b2c3d4e5f60"


class ProgressOut(ResponseModel):
    step: int
    steps: int


class SummaryOut(ResponseModel):
    """What a finished run achieved; every figure is null when the run never got there."""

    final_val_accuracy: FiniteFloat = None
    best_val_accuracy: FiniteFloat = None
    final_train_loss: FiniteFloat = None
    steps_to_target: int | None = Field(None, description="resolved to the spec's eval_every")
    seconds_to_target: FiniteFloat = None
    diverged_at_step: int | None = None
    steps_per_second: FiniteFloat = None


class JobExecutionOut(ResponseModel):
    """How the job is trained: `fused` — one Celery task trains its fused group's jobs together as stacked
    models, each still reported as its own job — or `separate`, one task for this job alone (every job
    outside a sweep's fused groups, a job submitted on its own included)."""

    mode: Literal["fused", "separate"]
    group_id: str | None = Field(
        None, description="the fused group's id, as the sweep lists it in `execution.fused_groups`"
    )
    group_size: int | None = Field(None, description="how many jobs the fused group trains together")


class JobOut(ResponseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": EXAMPLE_JOB_ID,
                    "status": "succeeded",
                    "spec": PAPER_DIGITS_SPEC,
                    "created_at": "2025-01-01T12:00:00Z",
                    "started_at": "2025-01-01T12:00:01Z",
                    "finished_at": "2025-01-01T12:00:04Z",
                    "progress": {"step": 2000, "steps": 2000},
                    "device": "cpu",
                    "attempts": 1,
                    "summary": {
                        "final_val_accuracy": 0.97,
                        "best_val_accuracy": 0.975,
                        "final_train_loss": 0.09,
                        "steps_to_target": 70,
                        "seconds_to_target": 0.1,
                        "diverged_at_step": None,
                        "steps_per_second": 950.0,
                    },
                    "error": None,
                    "sweep_id": None,
                    "execution": {"mode": "separate", "group_id": None, "group_size": None},
                    "tags": ["paper"],
                    "note": "",
                    "archived": False,
                    "waiting_for": None,
                }
            ]
        },
    )

    id: str = Field(description="UUID4 hex")
    status: JobStatus
    # A spec stored before NUL was refused (SQLite kept it) reads back with U+FFFD instead of failing.
    spec: Annotated[JobSpec, BeforeValidator(with_unstorable_text_replaced)]
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress: ProgressOut | None = None
    device: str | None = Field(None, description="where it trained (known once it started)")
    attempts: int = 0
    summary: SummaryOut | None = None
    error: str | None = None
    sweep_id: str | None = None
    # A stored job spells it out in `execution_details` (its own `execution` is the sweep's word for it).
    execution: JobExecutionOut = Field(validation_alias=AliasChoices("execution_details", "execution"))
    tags: list[str] = Field(default_factory=list, description="set with PATCH; filter lists with `?tag=`")
    note: str = ""
    archived: bool = Field(False, description="archived jobs are left out of lists unless asked for")
    waiting_for: str | None = Field(
        None,
        description="why a queued job does not start: no live worker consumes its queue (one sentence "
        "saying how to start one); null otherwise",
    )


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = Field(None, description="pass as `cursor` for the next page; null on the last")


class MetricsOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "job_id": EXAMPLE_JOB_ID,
                    "series": {"val_accuracy": {"steps": [0, 10, 20], "values": [0.1, 0.52, 0.81]}},
                }
            ]
        }
    )

    job_id: str
    series: dict[str, Series]


class TelemetryLayerOut(ResponseModel):
    """One hidden layer's nonlinearity input over training (unit_* = one fixed unit, paper Fig. 1(b,c))."""

    layer: int
    steps: list[int]
    unit_p15: list[FiniteFloat]
    unit_p50: list[FiniteFloat]
    unit_p85: list[FiniteFloat]
    p15: list[FiniteFloat]
    p50: list[FiniteFloat]
    p85: list[FiniteFloat]
    mean: list[FiniteFloat]
    std: list[FiniteFloat]
    saturated_fraction: list[FiniteFloat] = Field(description="null for relu, which does not saturate")
    grad_norm: list[FiniteFloat]
    ics_gradient_change: list[FiniteFloat] = Field(
        description="Santurkar et al.'s gradient-based ICS: ‖G − G′‖₂, G′ the layer's weight gradient once "
        "the layers before it took their step (0 for the first layer); null where not measured"
    )
    ics_gradient_cosine: list[FiniteFloat] = Field(description="cos(G, G′); null where not measured")


class TelemetryOut(BaseModel):
    layers: list[TelemetryLayerOut]


class LandscapeProbeOut(ResponseModel):
    """One loss-landscape probe along the gradient (Santurkar et al. 2018, Fig. 4); null where not finite."""

    step: int
    step_sizes: list[FiniteFloat] = Field(description="η: the points probed are w − η·g")
    losses: list[FiniteFloat] = Field(description="the probe batch's loss at each point, in step_sizes order")
    loss_range: FiniteFloat = Field(description="max − min of the losses: the band of Fig. 4(a)")
    gradient_predictiveness: FiniteFloat = Field(description="max over η of ‖∇L(w − η·g) − g‖₂")
    beta_smoothness: FiniteFloat = Field(description="max over η of ‖∇L(w − η·g) − g‖₂ / (η·‖g‖₂)")
    grad_norm: FiniteFloat = Field(description="‖g‖₂, the gradient on the probe batch")
    relative_gradient_change: FiniteFloat = Field(description="max over η of ‖∇L(w − η·g) − g‖₂ / ‖g‖₂")


class LandscapeOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "job_id": EXAMPLE_JOB_ID,
                    "probes": [
                        {
                            "step": 100,
                            "step_sizes": [0.05, 0.1, 0.2, 0.4],
                            "losses": [0.412, 0.398, 0.371, 0.329],
                            "loss_range": 0.083,
                            "gradient_predictiveness": 0.21,
                            "beta_smoothness": 3.4,
                            "grad_norm": 0.62,
                            "relative_gradient_change": 0.34,
                        }
                    ],
                }
            ]
        }
    )

    job_id: str
    probes: list[LandscapeProbeOut] = Field(description="in step order; empty when landscape_every is 0")
