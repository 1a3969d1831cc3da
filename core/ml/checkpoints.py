"""What a stack of runs carries from step to step, and its snapshot as a checkpoint blob.

A checkpoint holds everything the next steps depend on, so that training resumed from it continues exactly
where the snapshot was taken: on the CPU at the same thread count the remaining metrics are bit-identical to
those of a stack that was never interrupted. That is the stacked parameters and optimizer state, the
generators the steps draw from (the stack's dropout generator; torch's global generators for a lone net
stepped by autograd), the sampler's epoch and position, the step, and each job's running summary (best
accuracy, steps and seconds to the target, training time so far), how each job ended if it has, and the
per-step train figures accumulated since the last evaluation.

The blob is `torch.save` of plain tensors, numbers and strings, read back with `weights_only=True`, so
loading a stored blob cannot execute code. Format 2 came with the counter-based sampler: a blob of format 1
(per-model generator samplers) is refused.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from core.results import METRIC_NAMES, MetricPoint, Result, Summary
from core.spec import JobSpec

CHECKPOINT_FORMAT = 2
SPEC_FIELDS_THAT_DO_NOT_CHANGE_TRAINING = frozenset({"name"})


@dataclass
class RunningSummary:
    """The figures a run keeps up to date at each evaluation (plain numbers; saved in checkpoints)."""

    best_val_accuracy: float | None = None
    final_val_accuracy: float | None = None
    final_train_loss: float | None = None
    final_val_loss: float | None = None
    steps_to_target: int | None = None
    seconds_to_target: float | None = None
    elapsed_seconds: float = 0.0  # training wall time up to the latest checkpoint

    def record_evaluation(
        self, step: int, figures: list[float], target: float | None, elapsed_seconds: float
    ) -> list[MetricPoint]:
        """Take one evaluation's figures (in METRIC_NAMES order) into the summary; returns its points."""
        train_loss, _, validation_loss, validation_accuracy = figures
        self.final_train_loss = train_loss
        self.final_val_loss = validation_loss
        self.final_val_accuracy = validation_accuracy
        if self.best_val_accuracy is None or validation_accuracy > self.best_val_accuracy:
            self.best_val_accuracy = validation_accuracy
        if target is not None and self.steps_to_target is None and validation_accuracy >= target:
            self.steps_to_target = step
            self.seconds_to_target = elapsed_seconds
        return [MetricPoint(name, step, value) for name, value in zip(METRIC_NAMES, figures, strict=True)]

    def final(self, diverged_at_step: int | None, steps_per_second: float | None) -> Summary:
        """The summary a finished run reports."""
        return Summary(
            final_val_accuracy=self.final_val_accuracy,
            best_val_accuracy=self.best_val_accuracy,
            final_train_loss=self.final_train_loss,
            final_val_loss=self.final_val_loss,
            steps_to_target=self.steps_to_target,
            seconds_to_target=self.seconds_to_target,
            diverged_at_step=diverged_at_step,
            steps_per_second=steps_per_second,
        )


@dataclass
class StackState:
    """A stack's state at a checkpoint: per job (in spec order) and per row (in stack order)."""

    step: int
    elapsed_seconds: float
    summaries: list[RunningSummary]
    results: list[Result | None]
    rows: list[int]  # the spec index of each row of the stacks
    window_losses: list[Tensor] = field(default_factory=list)  # [steps, rows] each
    window_correct: list[Tensor] = field(default_factory=list)
    sampler: dict[str, Any] = field(default_factory=dict)
    stack: dict[str, Any] = field(default_factory=dict)


def save_stack_checkpoint(specs: Sequence[JobSpec], state: StackState) -> bytes:
    rows = len(state.rows)
    snapshot: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "specs": [_training_fields(spec) for spec in specs],
        "step": state.step,
        "elapsed_seconds": state.elapsed_seconds,
        "summaries": [asdict(summary) for summary in state.summaries],
        "results": [None if result is None else asdict(result) for result in state.results],
        "rows": state.rows,
        "window_losses": _concatenated(state.window_losses, rows, torch.float32),
        "window_correct": _concatenated(state.window_correct, rows, torch.long),
        "sampler": state.sampler,
        "stack": state.stack,
    }
    buffer = io.BytesIO()
    torch.save(snapshot, buffer)
    return buffer.getvalue()


def load_stack_checkpoint(blob: bytes, specs: Sequence[JobSpec], device: torch.device) -> StackState:
    """The state saved in `blob`, tensors on `device`.

    Raises ValueError for a blob of other specs (or another order) or format: resuming it would silently
    train something else.
    """
    snapshot = torch.load(io.BytesIO(blob), map_location=device, weights_only=True)
    if snapshot.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"unknown checkpoint format {snapshot.get('format')!r}")
    if snapshot["specs"] != [_training_fields(spec) for spec in specs]:
        raise ValueError("the checkpoint was taken from a run of different specs")
    window_losses, window_correct = snapshot["window_losses"], snapshot["window_correct"]
    return StackState(
        step=int(snapshot["step"]),
        elapsed_seconds=float(snapshot["elapsed_seconds"]),
        summaries=[RunningSummary(**summary) for summary in snapshot["summaries"]],
        results=[None if fields is None else _result_from_fields(fields) for fields in snapshot["results"]],
        rows=[int(row) for row in snapshot["rows"]],
        window_losses=[window_losses] if window_losses.numel() else [],
        window_correct=[window_correct] if window_correct.numel() else [],
        sampler=snapshot["sampler"],
        stack=snapshot["stack"],
    )


def _training_fields(spec: JobSpec) -> dict[str, Any]:
    return spec.model_dump(mode="json", exclude=set(SPEC_FIELDS_THAT_DO_NOT_CHANGE_TRAINING))


def _result_from_fields(fields: dict[str, Any]) -> Result:
    return Result(
        outcome=fields["outcome"],
        steps_completed=int(fields["steps_completed"]),
        summary=Summary(**fields["summary"]),
        device=fields["device"],
    )


def _concatenated(parts: list[Tensor], rows: int, dtype: torch.dtype) -> Tensor:
    return torch.cat(parts).cpu() if parts else torch.empty(0, rows, dtype=dtype)
