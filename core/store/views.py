"""What the store hands out: plain frozen records (never ORM rows) and the store's own errors.

Floats that were not finite when written come back as None (they are stored as NULL).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from core.db.tables import TERMINAL_STATUSES
from core.results import Progress, Summary
from core.spec import JobSpec, with_unstorable_text_replaced


class JobNotFound(LookupError):
    """A write named a job id that does not exist."""


class InvalidCursor(ValueError):
    """A pagination cursor that this store did not hand out."""


@dataclass(frozen=True)
class JobExecution:
    """How one job is trained: `fused` — one task trains its group's `group_size` jobs together as stacked
    models — or `separate`, a task of its own (then `group_id` and `group_size` are None)."""

    mode: Literal["fused", "separate"]
    group_id: str | None = None
    group_size: int | None = None


@dataclass(frozen=True)
class JobCount:
    """How many jobs are in `status` with the spec's `device` (which picks their queue)."""

    status: str
    device: str
    count: int


@dataclass(frozen=True)
class SweepProgress:
    """How far a sweep's training has got, summed over its jobs. A finished job counts its whole step budget
    as done (it has no steps left to run, whether it met its target, diverged or was cancelled);
    `model_steps_per_second` sums the latest rate of every running job (a fused group's models each count)."""

    steps_done: int
    steps_total: int
    model_steps_per_second: float

    @property
    def eta_seconds(self) -> float | None:
        """The time left at the current rate; None while nothing trains (and 0 once nothing is left)."""
        remaining = self.steps_total - self.steps_done
        if remaining <= 0:
            return 0.0
        return remaining / self.model_steps_per_second if self.model_steps_per_second > 0 else None


@dataclass(frozen=True)
class JobView:
    """A job as stored. `id` is the public UUID4 hex; `spec` is the validated spec as JSON."""

    id: str
    name: str
    status: str
    spec: dict[str, Any]
    created_at: datetime
    enqueued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    progress: Progress | None
    summary: Summary | None
    device: str | None
    error: str | None
    lease_owner: str | None
    heartbeat_at: datetime | None
    lease_losses: int
    cancel_requested: bool
    sweep_id: str | None
    execution: str | None  # how a sweep's job runs: fused (in `fused_group`) or separate; None outside sweeps
    fused_group: str | None = None  # the public id of the fused group that trains the job
    fused_group_size: int | None = None  # how many jobs that group trains together
    tags: list[str] = field(default_factory=list)
    note: str = ""
    archived: bool = False

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def execution_details(self) -> JobExecution:
        """How the job is trained: in its fused group, or as a task of its own (every job outside a sweep's
        fused groups, a job submitted on its own included)."""
        if self.fused_group is None:
            return JobExecution("separate")
        return JobExecution("fused", self.fused_group, self.fused_group_size)

    def job_spec(self) -> JobSpec:
        """The stored spec, validated; text stored before NUL and lone surrogates were refused (SQLite
        kept them, in a job's name) reads back with U+FFFD in their place, as the API shows it."""
        return JobSpec.model_validate(with_unstorable_text_replaced(self.spec))


@dataclass(frozen=True)
class FusedGroupView:
    """Jobs of a sweep that one task trains together as stacked models, in the order it trains them."""

    id: str
    size: int
    job_ids: list[str]


@dataclass(frozen=True)
class SweepView:
    """A sweep and its jobs' public ids in creation order (grid point by grid point, seeds innermost), its
    fused groups (a job in none runs as its own task), and its jobs' statuses by id."""

    id: str
    name: str
    base: dict[str, Any]
    grid: dict[str, Any]
    seeds: list[int]
    execution: str
    size: int
    created_at: datetime
    job_ids: list[str]
    fused_groups: list[FusedGroupView] = field(default_factory=list)
    job_statuses: dict[str, str] = field(default_factory=dict)  # each job's status as read with the sweep
    tags: list[str] = field(default_factory=list)
    note: str = ""
    archived: bool = False


LeaseOutcome = Literal[
    "acquired",  # the job was queued
    "taken_over",  # the job was running under a stale lease (a lease loss is counted)
    "fresh_lease",  # another worker holds a live lease: drop this delivery
    "finished",  # the job is already terminal (including cancelled while queued)
    "lost_too_often",  # the stale lease was the last one allowed: the job is now failed
    "cancelled",  # the job was running under a stale lease with a cancel request: now cancelled
    "not_found",
]


@dataclass(frozen=True)
class LeaseResult:
    """What `acquire_lease` did; `job` is the job after the attempt (None when it does not exist)."""

    outcome: LeaseOutcome
    job: JobView | None

    @property
    def acquired(self) -> bool:
        return self.outcome in {"acquired", "taken_over"}


@dataclass(frozen=True)
class GroupLease:
    """What `acquire_group_lease` did: each job's `LeaseResult` in order, or, when another worker holds a
    fresh lease on any of them, nothing at all (`held_elsewhere`; no job was changed)."""

    leases: list[LeaseResult]
    held_elsewhere: bool = False


@dataclass(frozen=True)
class RepublishCandidate:
    """A job the sweeper may publish again, with the columns as read (the claim is conditional on them)."""

    job_id: str
    device: str
    status: str
    enqueued_at: datetime | None
    heartbeat_at: datetime | None
    fused_group: str | None = None  # publish the group's task, not the job's


# A hidden layer's gradient-based ICS over the probe steps: (layer, ‖G − G′‖₂ per step, cos(G, G′) per step).
LayerFigures = tuple[int, list[float | None], list[float | None]]


@dataclass(frozen=True)
class LayerTelemetry:
    """One hidden layer's statistics over training: one list entry per probe step."""

    layer: int
    steps: list[int]
    unit_p15: list[float | None]
    unit_p50: list[float | None]
    unit_p85: list[float | None]
    p15: list[float | None]
    p50: list[float | None]
    p85: list[float | None]
    mean: list[float | None]
    std: list[float | None]
    saturated_fraction: list[float | None]
    grad_norm: list[float | None]
    ics_gradient_change: list[float | None]
    ics_gradient_cosine: list[float | None]


@dataclass(frozen=True)
class LandscapeView:
    """A stored loss-landscape probe: `core.results.LandscapeRecord`'s fields, non-finite values as None."""

    step: int
    step_sizes: list[float | None]
    losses: list[float | None]
    loss_range: float | None
    gradient_predictiveness: float | None
    beta_smoothness: float | None
    grad_norm: float | None
    relative_gradient_change: float | None


MetricSeries = dict[str, tuple[list[int], list[float | None]]]
Crossing = tuple[int, float]  # (step, value) where a series first met a target


@dataclass(frozen=True)
class SeriesWithCrossing:
    """One job's series of one metric as `read_metrics` returns it, and the (step, value) where it first
    met the target at full resolution (None: it never did, or no target was given)."""

    steps: list[int]
    values: list[float | None]
    crossing: Crossing | None


@dataclass(frozen=True)
class StatusChange:
    """One step of a job's lifecycle: `seq` counts from 1 (queued)."""

    seq: int
    status: str
    at: datetime | None


@dataclass(frozen=True)
class JobEventState:
    """What an event stream needs to know about a job at one moment."""

    id: str
    status: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress: Progress | None
    summary: Summary | None
    error: str | None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def has_started(self) -> bool:
        return self.started_at is not None

    def status_history(self) -> list[StatusChange]:
        """queued, then running once a worker took it, then the final status once it has one."""
        changes: list[tuple[str, datetime | None]] = [("queued", self.created_at)]
        if self.started_at is not None:
            changes.append(("running", self.started_at))
        if self.is_terminal:
            changes.append((self.status, self.finished_at))
        return [StatusChange(seq, status, at) for seq, (status, at) in enumerate(changes, start=1)]


@dataclass(frozen=True)
class MetricStep:
    """Every metric recorded at one evaluation step (None for a value that was not finite)."""

    step: int
    values: dict[str, float | None]


@dataclass(frozen=True)
class DatasetView:
    """An uploaded dataset: its name, the SHA-256 of its stored blob, and what it holds."""

    name: str
    sha256: str
    train_size: int
    val_size: int  # 0: no validation split was given (training holds out a seeded 20%)
    input_shape: list[int]
    num_classes: int
    created_at: datetime


@dataclass(frozen=True)
class WorkerTraining:
    """What a worker's pool is training: one job, or the jobs of one fused group (`group_id`)."""

    job_ids: list[str]
    group_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"job_ids": list(self.job_ids), "group_id": self.group_id}


@dataclass(frozen=True)
class WorkerView:
    """A worker process as it last reported itself (`core.store.workers`)."""

    id: str
    name: str
    host: str
    pid: int
    queues: list[str]
    device: dict[str, Any]
    training: WorkerTraining | None
    started_at: datetime
    last_seen: datetime
    alive: bool


@dataclass(frozen=True)
class StoredAnswer:
    """What an earlier request with the same key left: its body's digest and, once answered, the answer
    (`status_code` None while that request is still being answered)."""

    request_sha256: str
    status_code: int | None
    response: dict[str, Any] | None
