"""sgd, momentum and adam for stacked models: in-place updates of a flat [M, P] parameter buffer.

A `torch.optim` parameter group holds one scalar learning rate, so a fused group cannot use one optimizer
for M models with M rates. These are the same updates written on the stacks, with each model's rate
broadcast over its row as an [M, 1] tensor. The formulas mirror torch's single-tensor implementations (the
ones torch uses on the CPU), operation by operation, so that each model follows its separate run:

- sgd: p ← p − lr·g;
- momentum (torch's SGD, momentum 0.9, dampening 0, no Nesterov): b ← 0.9·b + g (b = g at the first step),
  p ← p − lr·b;
- adam (torch's defaults β = (0.9, 0.999), ε = 1e-8, no weight decay): m ← lerp(m, g, 1 − β₁),
  v ← β₂·v + (1 − β₂)·g², p ← p + (−lr / (1 − β₁ᵗ))·m / (√v / √(1 − β₂ᵗ) + ε) — ε added after the
  bias-corrected square root, the step size computed in double and then rounded, as torch does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from core.ml.training import MOMENTUM

ADAM_BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults, which `build_optimizer` keeps
ADAM_EPS = 1e-8
OPTIMIZER_KINDS = ("sgd", "momentum", "adam")


class StackedOptimizer:
    """One optimizer kind for M models with M learning rates; state is kept as [M, P] tensors."""

    def __init__(self, kind: str, learning_rates: Sequence[float], parameters: Tensor) -> None:
        if kind not in OPTIMIZER_KINDS:
            raise ValueError(f"unknown optimizer {kind!r}")
        if len(learning_rates) != parameters.shape[0]:
            raise ValueError("one learning rate per stacked model is needed")
        self.kind = kind
        self.steps_taken = 0  # adam's t: every model of a group has taken the same number of steps
        self._learning_rates = torch.tensor(learning_rates, dtype=torch.float64, device=parameters.device)
        self._state: dict[str, Tensor] = {}
        if kind == "momentum":
            self._state["momentum_buffer"] = torch.zeros_like(parameters)
        elif kind == "adam":
            self._state["exp_avg"] = torch.zeros_like(parameters)
            self._state["exp_avg_sq"] = torch.zeros_like(parameters)
        self._refresh(parameters.dtype)

    @torch.no_grad()
    def step(self, parameters: Tensor, gradients: Tensor) -> None:
        """Update `parameters` ([M, P], in place) from `gradients` of the same shape."""
        self.steps_taken += 1
        if self.kind == "sgd":
            parameters.addcmul_(gradients, self._negative_rates)
        elif self.kind == "momentum":
            buffer = self._state["momentum_buffer"]
            buffer.mul_(MOMENTUM).add_(gradients)
            parameters.addcmul_(buffer, self._negative_rates)
        else:
            self._adam(parameters, gradients)

    def _adam(self, parameters: Tensor, gradients: Tensor) -> None:
        beta1, beta2 = ADAM_BETAS
        exp_avg, exp_avg_sq = self._state["exp_avg"], self._state["exp_avg_sq"]
        exp_avg.lerp_(gradients, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(gradients, gradients, value=1 - beta2)
        bias_correction1 = 1 - beta1**self.steps_taken
        bias_correction2_sqrt = (1 - beta2**self.steps_taken) ** 0.5
        # torch: value = −(lr / bias_correction1) in double, rounded to the parameters' dtype by addcdiv.
        negative_step_sizes = (self._learning_rates / -bias_correction1).to(parameters.dtype).view(-1, 1)
        denominator = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(ADAM_EPS)
        # addcdiv computes p + (value·m) / d: multiplying m by the step size first keeps that rounding order.
        parameters.addcdiv_(exp_avg * negative_step_sizes, denominator)

    def keep(self, slots: Sequence[int]) -> None:
        """Keep only the state of the models at `slots`, in that order (see `StackedMLP.keep`)."""
        index = torch.tensor(slots, dtype=torch.long, device=self._learning_rates.device)
        self._learning_rates = self._learning_rates.index_select(0, index)
        self._state = {name: tensor.index_select(0, index) for name, tensor in self._state.items()}
        self._refresh(self._negative_rates.dtype)

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "steps_taken": self.steps_taken,
            "learning_rates": self._learning_rates,
            **self._state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["kind"] != self.kind:
            raise ValueError(f"optimizer state of {state['kind']!r} cannot resume {self.kind!r}")
        self.steps_taken = int(state["steps_taken"])
        self._learning_rates.copy_(state["learning_rates"])
        for name, tensor in self._state.items():
            tensor.copy_(state[name])
        self._refresh(self._negative_rates.dtype)

    def _refresh(self, dtype: torch.dtype) -> None:
        # torch's `p.add_(g, alpha=-lr)` rounds −lr to the parameters' dtype too.
        self._negative_rates = (-self._learning_rates).to(dtype).view(-1, 1)
