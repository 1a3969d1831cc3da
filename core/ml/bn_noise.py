"""Noisy BN (Santurkar et al. 2018, Sec. 2.1): BN's output shifted and rescaled at random at every step.

After each BN layer, at each training step t, every unit j of layer l of a model gets

    y ← s · y + m,   m = mean_std · z₁,   s = exp(scale_std · z₂),   z₁, z₂ ~ N(0, 1) independent,

drawn afresh for every (t, l, j) and shared by the batch's examples: the distribution the nonlinearity sees
moves from step to step — its mean by m (non-zero), its spread by the factor s (non-unit) — so covariate
shift is larger than without BN. Evaluation, inference-mode telemetry, landscape and ICS probes see no
noise; train-mode telemetry (`telemetry_mode: train`, the nonlinearity's input as training sees it) sees the
draw of the coming training step.

The draws are counter-based like the batches (`core.ml.sampling`): z is a function of (seed, t, l, j) alone,
hashed with splitmix64 into two uniforms each and turned into normals by Box–Muller, so a model's noise is
the same whether it trains alone or in a stack, after a resume, on any device; no generator is touched.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from core.ml.sampling import GOLDEN_GAMMA, MASK64, mix_bits, shift_right

NOISE_SALT = 0x4E4F495345  # "NOISE": keeps these streams apart from the batches' (same seeds)
STEP_MULTIPLIER = -3263064605168079213  # 0xD2B74407B1CE6E93 as int64: spreads consecutive steps
UNIT_STRIDE = 4  # uniforms per unit: two normals, two uniforms each
MAX_UNITS_PER_LAYER = 1 << 20  # counters of one layer (channels ≤ 256, widths ≤ 2048): layers never overlap


def standard_normals(seeds: Tensor, step: int, layer: int, units: int) -> tuple[Tensor, Tensor]:
    """z₁ and z₂ ([models, units] each, float64) of every model (seeds [models], int64) at (step, layer)."""
    per_model = mix_bits(seeds.view(-1, 1) * GOLDEN_GAMMA + NOISE_SALT)
    per_step = mix_bits(per_model ^ _wrapped(step * STEP_MULTIPLIER))
    counters = layer * MAX_UNITS_PER_LAYER + torch.arange(UNIT_STRIDE * units, device=seeds.device)
    keys = mix_bits(per_step + counters * GOLDEN_GAMMA)  # [models, 4·units]
    uniforms = shift_right(keys, 11).double() * 2.0**-53  # the top 53 bits: [0, 1)
    first, angle, second, other_angle = uniforms.view(-1, units, UNIT_STRIDE).unbind(-1)
    return _box_muller(first, angle), _box_muller(second, other_angle)


def _wrapped(value: int) -> int:
    """`value` modulo 2⁶⁴ as the int64 with its bits (what int64 tensor multiplication gives)."""
    value &= MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


def _box_muller(uniform: Tensor, angle: Tensor) -> Tensor:
    return torch.sqrt(-2.0 * torch.log1p(-uniform)) * torch.cos(2 * math.pi * angle)  # log(1 − u), u < 1


def shifts_and_scales(
    seeds: Tensor,
    mean_stds: Tensor,
    scale_stds: Tensor,
    step: int,
    layer: int,
    units: int,
    dtype: torch.dtype,
) -> tuple[Tensor, Tensor]:
    """Each model's m and s [models, units] at (step, layer); a model with both stds 0 gets m = 0, s = 1."""
    mean_noise, scale_noise = standard_normals(seeds, step, layer, units)
    shifts = mean_stds.view(-1, 1).double() * mean_noise
    scales = torch.exp(scale_stds.view(-1, 1).double() * scale_noise)
    return shifts.to(dtype), scales.to(dtype)
