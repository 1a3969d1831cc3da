"""Finished runs written straight through the store, as a worker would write them, so that comparison
and sweep tests need not train anything."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from core.results import MetricPoint, Summary, TelemetryRecord
from core.spec import JobSpec
from core.store import Store

BASE_SPEC: dict[str, Any] = {
    "architecture": {"kind": "mlp", "hidden": [16, 16], "activation": "sigmoid"},
    "batch_norm": True,
    "learning_rate": 0.1,
    "dropout": 0.0,
    "batch_size": 32,
    "steps": 200,
    "eval_every": 10,
    "target_accuracy": 0.9,
    "telemetry_every": 20,
    "device": "cpu",
}
STEPS_PER_SECOND = 500.0


def spec_with(**changes: Any) -> JobSpec:
    return JobSpec.model_validate({**BASE_SPEC, **changes})


def take_lease(store: Store, job_id: str) -> str:
    owner = f"test-worker-{uuid.uuid4().hex[:6]}"
    assert store.acquire_lease(job_id, owner, lease_seconds=60).acquired
    return owner


def finish(
    store: Store,
    job_id: str,
    accuracy: Sequence[float],
    status: str = "succeeded",
    seconds_to_target: float | None = None,
    diverged_at_step: int | None = None,
    steps_run: int | None = None,
) -> None:
    """Write a validation-accuracy curve (one point per `eval_every`, from step 0), progress and the
    summary of an existing job, and set its final status."""
    stored = store.get_job(job_id)
    assert stored is not None
    spec = stored.job_spec()
    owner = take_lease(store, job_id)
    steps = [spec.eval_every * index for index in range(len(accuracy))]
    store.write_metrics(
        job_id,
        [MetricPoint("val_accuracy", step, value) for step, value in zip(steps, accuracy, strict=True)],
    )
    reached = [
        step
        for step, value in zip(steps, accuracy, strict=True)
        if spec.target_accuracy and value >= spec.target_accuracy
    ]
    finite = [value for value in accuracy if value == value]  # NaN is the only value unequal to itself
    done = steps_run if steps_run is not None else (steps[-1] if status != "succeeded" else spec.steps)
    store.set_progress(job_id, done, spec.steps, STEPS_PER_SECOND)
    summary = Summary(
        final_val_accuracy=accuracy[-1],
        best_val_accuracy=max(finite) if finite else None,
        steps_to_target=reached[0] if reached else None,
        seconds_to_target=seconds_to_target if reached else None,
        diverged_at_step=diverged_at_step,
        steps_per_second=STEPS_PER_SECOND,
    )
    assert store.finish_job(job_id, owner, status, summary=summary, device="cpu")


def record_run(
    store: Store,
    accuracy: Sequence[float],
    status: str = "succeeded",
    seconds_to_target: float | None = None,
    diverged_at_step: int | None = None,
    steps_run: int | None = None,
    **spec_changes: Any,
) -> str:
    """A new job, already finished with the given curve; returns its id."""
    job = store.create_job(spec_with(**spec_changes))
    finish(store, job.id, accuracy, status, seconds_to_target, diverged_at_step, steps_run)
    return job.id


def record_telemetry(
    store: Store,
    job_id: str,
    spread: float,
    layers: int = 2,
    points: int = 10,
    ics_change: float | None = None,
) -> None:
    """Telemetry of every hidden layer every 20 steps; the unit's percentiles widen with `spread`. With
    `ics_change`, the gradient-based ICS of layer l is l·ics_change, its cosine 1 − l·ics_change / 10 (the
    first layer's 0 and 1, as measured)."""
    records = [
        TelemetryRecord(
            step=20 * index,
            layer=layer,
            unit_p15=-spread * (1 + index),
            unit_p50=0.1 * index,
            unit_p85=spread * (1 + index),
            p15=-1.0,
            p50=0.0,
            p85=1.0,
            mean=0.0,
            std=1.0,
            saturated_fraction=0.1,
            grad_norm=0.5,
            ics_gradient_change=None if ics_change is None else layer * ics_change * (1 + index / 10),
            ics_gradient_cosine=None if ics_change is None else 1 - layer * ics_change / 10,
        )
        for index in range(points)
        for layer in range(layers)
    ]
    store.write_telemetry(job_id, records)
