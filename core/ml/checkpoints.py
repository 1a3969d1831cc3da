"""What a run carries from step to step, and its snapshot as a checkpoint blob.

A checkpoint holds everything the next steps depend on, so that `run(spec, checkpoint=blob)` continues
exactly where the snapshot was taken: on the CPU at the same thread count its remaining metrics are
bit-identical to those of a run that was never interrupted. That is the model and optimizer state, every
random number generator the steps draw from (torch's global CPU generator — dropout on the CPU — the batch
sampler's own generator and order, the CUDA generator when training on a GPU), the step, and the running
summary: best accuracy, steps and seconds to the target, training time so far, and the per-step train
figures accumulated since the last evaluation.

The blob is `torch.save` of plain tensors, numbers and strings, read back with `weights_only=True`, so
loading a stored blob cannot execute code.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from core.ml.sampling import BatchSampler
from core.results import METRIC_NAMES, MetricPoint, Summary
from core.spec import JobSpec

CHECKPOINT_FORMAT = 1
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
class RunState:
    """The step, the running summary and the train figures of the steps since the last evaluation.

    Per-step losses and correct-prediction counts stay on the training device, one tensor per stretch of
    steps between sync points; an evaluation reduces them all at once.
    """

    step: int = 0
    summary: RunningSummary = field(default_factory=RunningSummary)
    window_losses: list[Tensor] = field(default_factory=list)
    window_correct: list[Tensor] = field(default_factory=list)


def save_checkpoint(
    spec: JobSpec,
    state: RunState,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    sampler: BatchSampler,
    device: torch.device,
) -> bytes:
    snapshot: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "spec": _training_fields(spec),
        "step": state.step,
        "summary": asdict(state.summary),
        "window_losses": _concatenated(state.window_losses, torch.float32),
        "window_correct": _concatenated(state.window_correct, torch.long),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "sampler": sampler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }
    buffer = io.BytesIO()
    torch.save(snapshot, buffer)
    return buffer.getvalue()


def load_checkpoint(
    blob: bytes,
    spec: JobSpec,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    sampler: BatchSampler,
    device: torch.device,
) -> RunState:
    """Restore model, optimizer, sampler and generators from `blob`; returns the run's state at that step.

    Raises ValueError for a blob of another spec or format: resuming it would silently train something else.
    """
    snapshot = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    if snapshot.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"unknown checkpoint format {snapshot.get('format')!r}")
    if snapshot["spec"] != _training_fields(spec):
        raise ValueError("the checkpoint was taken from a run of a different spec")
    model.load_state_dict(snapshot["model"])
    optimizer.load_state_dict(snapshot["optimizer"])
    sampler.load_state_dict(snapshot["sampler"])
    torch.set_rng_state(snapshot["torch_rng"])
    # A job with device `auto` may move between a CPU and a GPU worker: it then continues from the same
    # weights, but with the other device's dropout masks (bit-identity holds only on the same device).
    if device.type == "cuda" and snapshot["cuda_rng"] is not None:
        torch.cuda.set_rng_state(snapshot["cuda_rng"], device)
    window_losses, window_correct = snapshot["window_losses"], snapshot["window_correct"]
    return RunState(
        step=int(snapshot["step"]),
        summary=RunningSummary(**snapshot["summary"]),
        window_losses=[window_losses.to(device)] if window_losses.numel() else [],
        window_correct=[window_correct.to(device)] if window_correct.numel() else [],
    )


def _training_fields(spec: JobSpec) -> dict[str, Any]:
    return spec.model_dump(mode="json", exclude=set(SPEC_FIELDS_THAT_DO_NOT_CHANGE_TRAINING))


def _concatenated(parts: list[Tensor], dtype: torch.dtype) -> Tensor:
    return torch.cat(parts).cpu() if parts else torch.empty(0, dtype=dtype)
