"""Internal-covariate-shift telemetry: how each hidden nonlinearity's input is distributed (paper Fig. 1).

At each telemetry step the net runs on a fixed probe batch and for every hidden layer bnlab records the
15th/50th/85th percentiles of the nonlinearity's input for one named unit (FIXED_UNIT; that channel of a conv
layer, over all positions), the same percentiles and the mean and standard deviation over all units, the
fraction of saturated values, the norm of the layer's weight gradient from the latest training step, and
Santurkar et al.'s gradient-based ICS of the layer (`core.ml.ics`, on the landscape probe's batch).

The spec's `telemetry_mode` says how:
- `inference` (the default): as the paper measured Fig. 1 — on held-out examples, the same for every model
  whatever its seed (`core.ml.stack_data`: the first PROBE_SIZE validation examples of split
  PROBE_SPLIT_SEED), with BN normalizing by its population statistics (running averages), as at test time.
- `train`: on the first PROBE_SIZE training examples of the model's own split, BN normalizing with the
  probe batch's own statistics, as the nonlinearity sees it during training (a BN layer's output then has
  batch mean β and batch deviation ≈ γ by construction), noisy BN's noise included (the draw of the coming
  step: the shift Santurkar et al. inject is part of what the nonlinearity sees).
Either way BN's running averages are left untouched and dropout is off (the stacks' `nonlinearity_inputs`):
the probe changes nothing about the run, so a run's metrics are the same with telemetry on or off. A
stack's models are probed at once, their statistics reduced row by row, and read in one transfer.

A value counts as saturated where the nonlinearity's derivative is below SATURATION_SLOPE of its maximum:
|z| > 4.36 for sigmoid, |z| > 2.18 for tanh. ReLU does not saturate (None).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from core.results import TelemetryRecord

PROBE_SIZE = 256
PROBE_SPLIT_SEED = 0  # the split whose validation examples are the inference-mode probe
FIXED_UNIT = 0
SATURATION_SLOPE = 0.05
PERCENTILES = (0.15, 0.5, 0.85)


def stacked_telemetry(
    per_unit: list[Tensor], everything: list[Tensor], gradient_norms: list[Tensor], activation: str, step: int
) -> list[list[TelemetryRecord]]:
    """The records of M models at once: per hidden layer, each model's nonlinearity inputs by unit
    [M, units, values] and all of them [M, values], and its weight gradient's norm [M]. One read."""
    layers = []
    for units, values, norm in zip(per_unit, everything, gradient_norms, strict=True):
        layers.append(
            torch.cat(
                [
                    _percentiles(units[:, FIXED_UNIT]),
                    _percentiles(values),
                    torch.stack(
                        [
                            values.mean(dim=1),
                            values.std(dim=1),
                            _saturated_fraction(values, activation),
                            norm,
                        ],
                        dim=1,
                    ),
                ],
                dim=1,
            )
        )
    table = torch.stack(layers, dim=1).double().tolist()  # [M, layers, 10]: the one sync point of a probe
    return [[_record(step, layer, row) for layer, row in enumerate(rows)] for rows in table]


def _percentiles(values: Tensor) -> Tensor:
    """Nearest-rank percentiles of each row of [M, n]: the ⌈q·n⌉-th smallest value for each q, [M, 3]
    (selection, not a full sort)."""
    count = values.shape[1]
    return torch.stack(
        [values.kthvalue(max(1, math.ceil(q * count)), dim=1).values for q in PERCENTILES], dim=1
    )


def _saturated_fraction(pre_activation: Tensor, activation: str) -> Tensor:
    if activation == "sigmoid":
        output = torch.sigmoid(pre_activation)
        slope_ratio = output * (1 - output) / 0.25
    elif activation == "tanh":
        slope_ratio = 1 - torch.tanh(pre_activation) ** 2
    else:
        return pre_activation.new_full(pre_activation.shape[:1], math.nan)
    return (slope_ratio < SATURATION_SLOPE).float().mean(dim=1)


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
