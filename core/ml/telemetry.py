"""Internal-covariate-shift telemetry: how each hidden nonlinearity's input is distributed (paper Fig. 1).

At each telemetry step the net runs on a fixed probe batch — the first PROBE_SIZE training examples, the
same ones every time — and for every hidden layer bnlab records the 15th/50th/85th percentiles of the
nonlinearity's input for one fixed unit (unit 0; channel 0 of a conv layer, over all positions), the same
percentiles and the mean and standard deviation over all units, the fraction of saturated values, and the
norm of the layer's weight gradient from the latest training step.

BN runs as in training — normalizing with the probe batch's own statistics — with its running averages
left untouched and dropout off (see `Net.nonlinearity_inputs`): the probe sees what the nonlinearity sees
during training and changes nothing about the run, so a run's metrics are the same with telemetry on or off.

A value counts as saturated where the nonlinearity's derivative is below SATURATION_SLOPE of its maximum:
|z| > 4.36 for sigmoid, |z| > 2.18 for tanh. ReLU does not saturate (None).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from core.ml.nets import Net
from core.results import TelemetryRecord

PROBE_SIZE = 256
FIXED_UNIT = 0
SATURATION_SLOPE = 0.05
PERCENTILES = (0.15, 0.5, 0.85)


def probe_batch(train_x: Tensor) -> Tensor:
    """The fixed inputs every telemetry step looks at."""
    return train_x[:PROBE_SIZE]


def layer_telemetry(model: Net, probe_inputs: Tensor, step: int) -> list[TelemetryRecord]:
    """One record per hidden layer at `step`. The statistics are reduced on the device, then read at once."""
    pre_activations = model.nonlinearity_inputs(probe_inputs)
    rows = []
    for values, weight_layer in zip(pre_activations, model.hidden_weight_layers, strict=True):
        per_unit = values.transpose(0, 1).reshape(values.shape[1], -1)  # (units, examples × positions)
        everything = values.flatten()
        gradient = weight_layer.weight.grad
        rows.append(
            torch.cat(
                [
                    _percentiles(per_unit[FIXED_UNIT]),
                    _percentiles(everything),
                    torch.stack(
                        [
                            everything.mean(),
                            everything.std(),
                            _saturated_fraction(values, model.activation),
                            gradient.norm() if gradient is not None else values.new_tensor(math.nan),
                        ]
                    ),
                ]
            )
        )
    table = torch.stack(rows).double().tolist()  # the one sync point of a probe
    return [_record(step, layer, row) for layer, row in enumerate(table)]


def _percentiles(values: Tensor) -> Tensor:
    """Nearest-rank percentiles: the ⌈q·n⌉-th smallest value for each q (selection, not a full sort)."""
    count = values.numel()
    return torch.stack([values.kthvalue(max(1, math.ceil(q * count))).values for q in PERCENTILES])


def _saturated_fraction(pre_activation: Tensor, activation: str) -> Tensor:
    if activation == "sigmoid":
        output = torch.sigmoid(pre_activation)
        slope_ratio = output * (1 - output) / 0.25
    elif activation == "tanh":
        slope_ratio = 1 - torch.tanh(pre_activation) ** 2
    else:
        return pre_activation.new_tensor(math.nan)
    return (slope_ratio < SATURATION_SLOPE).float().mean()


def _record(step: int, layer: int, row: list[float]) -> TelemetryRecord:
    unit_p15, unit_p50, unit_p85, p15, p50, p85, mean, std, saturated, grad_norm = row
    return TelemetryRecord(
        step=step,
        layer=layer,
        unit_p15=unit_p15,
        unit_p50=unit_p50,
        unit_p85=unit_p85,
        p15=p15,
        p50=p50,
        p85=p85,
        mean=mean,
        std=std,
        saturated_fraction=None if math.isnan(saturated) else saturated,
        grad_norm=grad_norm,
    )
