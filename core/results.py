"""What a training run reports, as plain torch-free records, and the callbacks it reports through (those of
one job, and the two a fused group adds).

The training core (`core.ml`) produces these; the worker adapts them to the store; the API serves them.
A figure that is not finite (a diverged loss) is no number anywhere: `finite_or_none` makes it None, which
the store keeps as NULL and the API shows as null.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

METRIC_NAMES = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
RunOutcome = Literal["succeeded", "diverged", "cancelled"]


def finite_or_none(value: object) -> float | None:
    """`value` as a float when it is a finite number (a Decimal, as PostgreSQL's numeric reads, is one; a
    bool is not), else None: missing, NaN and ±inf."""
    if type(value) is float:  # the common case, on the metric-ingest path: no ABC check
        return value if math.isfinite(value) else None
    if isinstance(value, bool) or not isinstance(value, numbers.Real | Decimal):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class MetricPoint:
    """One value of one metric at one step (the step counts optimizer updates done so far)."""

    name: str
    step: int
    value: float


@dataclass(frozen=True)
class Progress:
    step: int
    steps: int
    steps_per_second: float | None = None


@dataclass(frozen=True)
class TelemetryRecord:
    """Statistics of one hidden layer's nonlinearity input on the fixed probe batch (paper Fig. 1(b,c)).

    unit_* are percentiles of one fixed unit over the probe batch; p15/p50/p85/mean/std are over all units.
    `saturated_fraction` is None for relu (it does not saturate).
    """

    step: int
    layer: int
    unit_p15: float
    unit_p50: float
    unit_p85: float
    p15: float
    p50: float
    p85: float
    mean: float
    std: float
    saturated_fraction: float | None
    grad_norm: float
    # Santurkar et al.'s gradient-based ICS (`core.ml.ics`): ‖G − G′‖₂ and cos(G, G′) of the layer's weights.
    ics_gradient_change: float | None = None
    ics_gradient_cosine: float | None = None


@dataclass(frozen=True)
class LandscapeRecord:
    """A loss-landscape probe along the gradient at one step (Santurkar et al. 2018, Fig. 4)."""

    step: int
    step_sizes: list[float]
    losses: list[float]
    loss_range: float
    gradient_predictiveness: float
    beta_smoothness: float
    grad_norm: float
    relative_gradient_change: float


@dataclass(frozen=True)
class Summary:
    final_val_accuracy: float | None = None
    best_val_accuracy: float | None = None
    final_train_loss: float | None = None
    final_val_loss: float | None = None
    steps_to_target: int | None = None
    seconds_to_target: float | None = None
    diverged_at_step: int | None = None
    steps_per_second: float | None = None


@dataclass(frozen=True)
class Result:
    """How a run ended. `diverged` and `cancelled` are results, not exceptions."""

    outcome: RunOutcome
    steps_completed: int
    summary: Summary
    device: str


def _ignore(*_args: object) -> None:
    return None


@dataclass
class Callbacks:
    """How the training core reports; every member is optional. Called from the training thread.

    - on_progress: at step 0, then often (the caller throttles what it stores);
    - on_metrics: a batch of points at each evaluation;
    - on_telemetry / on_landscape: a batch of records at each probe interval;
    - should_stop: polled every few steps; True ends the run as `cancelled` within ~1 s;
    - on_checkpoint(step, blob): a resumable snapshot every `checkpoint_every` steps.
    """

    on_progress: Callable[[Progress], None] = _ignore
    on_metrics: Callable[[list[MetricPoint]], None] = _ignore
    on_telemetry: Callable[[list[TelemetryRecord]], None] = _ignore
    on_landscape: Callable[[list[LandscapeRecord]], None] = _ignore
    should_stop: Callable[[], bool] = field(default=lambda: False)
    on_checkpoint: Callable[[int, bytes], None] = _ignore


# A fused group's own reports (`core.ml.fused.run_fused`), beside each model's `Callbacks`:
GroupCheckpointHook = Callable[[int, bytes], None]  # (step, blob): the whole group's resumable snapshot
ModelResultHook = Callable[[int, Result], None]  # (index in the group, final result): one model has ended
SyncPointHook = Callable[[int], None]  # (step): every model has reported this sync point
