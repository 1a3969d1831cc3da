"""What the trainer reads of a stack at a sync point besides its training losses (`core.ml.trainer`): each
row's loss and accuracy on its own held-out split, the batches that the telemetry, ICS and landscape probes
take from each row's own split, and the telemetry records with their layer's ICS measure. A row's examples
in `StackData` start at its offset (`[rows, 1]`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor

from core.ml.stack_data import StackData
from core.ml.stacks import Stack
from core.results import TelemetryRecord

EVAL_BATCH_SIZE = 2048  # held-out examples per forward pass: bounds an evaluation's memory, not its result
MAX_EVAL_VALUES = 1 << 24  # input values of one stacked evaluation pass (64 MiB of float32)


def validation_figures(
    stack: Stack, data: StackData, val_offsets: Tensor, device: torch.device
) -> tuple[Tensor, Tensor]:
    """Each row's mean loss and accuracy on its held-out split, BN's running statistics, no dropout.

    The held-out examples go through in chunks of EVAL_BATCH_SIZE rows whatever the size of the stack
    (a chunk of another length would put other values in the nonlinearity's one-by-one tail on the CPU,
    see `core.ml.fused_model`), each chunk's cross-entropy computed for every model in one call; where
    the stack's chunks would take more than MAX_EVAL_VALUES input values, its models are evaluated a few
    at a time instead.
    """
    models, size, features = val_offsets.shape[0], data.val_size, data.val_x.shape[1]
    rows = max(1, min(EVAL_BATCH_SIZE, MAX_EVAL_VALUES // features))
    models_per_pass = max(1, MAX_EVAL_VALUES // (rows * features))
    loss_sum = torch.zeros(models, dtype=torch.float64, device=device)
    correct = torch.zeros(models, dtype=torch.long, device=device)
    with torch.no_grad():
        for first in range(0, models, models_per_pass):
            last = min(first + models_per_pass, models)
            part = stack if last - first == models else stack.models_between(first, last)
            for start in range(0, size, rows):
                positions = val_offsets[first:last] + torch.arange(
                    start, min(start + rows, size), device=device
                )
                inputs = data.val_x.index_select(0, positions.view(-1)).view(*positions.shape, -1)
                labels = data.val_y[positions]
                logits = part.evaluate(inputs)
                losses = F.cross_entropy(logits.flatten(0, 1), labels.view(-1), reduction="none")
                loss_sum[first:last] += losses.view(labels.shape).sum(dim=1).double()
                correct[first:last] += (logits.argmax(dim=-1) == labels).sum(dim=1)
    return loss_sum / size, correct.double() / size


def landscape_batch(
    data: StackData, train_offsets: Tensor, batch_size: int, device: torch.device
) -> tuple[Tensor, Tensor]:
    """Each row's first `batch_size` training examples and labels: the batch of the landscape and
    gradient-based ICS probes (`core.ml.landscape`, `core.ml.ics`)."""
    positions = train_offsets + torch.arange(min(batch_size, data.train_size), device=device)
    inputs = data.train_x.index_select(0, positions.view(-1)).view(*positions.shape, -1)
    labels = data.train_y.index_select(0, positions.view(-1)).view(positions.shape)
    return inputs, labels


def probe_inputs(
    data: StackData, train_offsets: Tensor, rows: int, telemetry_mode: str, device: torch.device
) -> Tensor:
    """Each row's telemetry probe [rows, P, features]: the fixed held-out set in inference mode, the
    first examples of the row's own training split in train mode (`core.ml.telemetry`)."""
    if data.probe_x is not None and telemetry_mode == "inference":
        return data.probe_x.expand(rows, -1, -1).contiguous()
    positions = train_offsets + torch.arange(data.probe_size, device=device)
    return data.train_x.index_select(0, positions.view(-1)).view(*positions.shape, -1)


def with_ics(
    records: Sequence[Sequence[TelemetryRecord]], shifts: Sequence[Sequence[tuple[float, float]]]
) -> list[list[TelemetryRecord]]:
    """Each row's telemetry records, one per hidden layer, with that layer's gradient-based ICS measure
    (‖G − G′‖₂, cos(G, G′); `core.ml.ics`) filled in."""
    return [
        [
            replace(record, ics_gradient_change=change, ics_gradient_cosine=cosine)
            for record, (change, cosine) in zip(model_records, model_shifts, strict=True)
        ]
        for model_records, model_shifts in zip(records, shifts, strict=True)
    ]
