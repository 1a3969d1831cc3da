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

MOMENTUM = 0.9  # the `momentum` optimizer's (torch's SGD with this momentum for a lone net)
ADAM_BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults, which `build_optimizer` keeps
ADAM_EPS = 1e-8
OPTIMIZER_KINDS = ("sgd", "momentum", "adam")


class StackedOptimizer:
    """One optimizer kind for M models with M learning rates, over stacked parameters [M, ...].

    Every update is a `torch._foreach_*` call over all parameters at once, in place, reading each
    gradient where autograd left it (no copy into one flat gradient: these nets are small enough for
    memory traffic, not arithmetic, to set the pace).
    """

    def __init__(self, kind: str, learning_rates: Sequence[float], parameters: Sequence[Tensor]) -> None:
        if kind not in OPTIMIZER_KINDS:
            raise ValueError(f"unknown optimizer {kind!r}")
        if any(len(learning_rates) != parameter.shape[0] for parameter in parameters):
            raise ValueError("one learning rate per stacked model is needed")
        self.kind = kind
        self.steps_taken = 0  # adam's t (counted for adam only): every model of a group has taken as many
        self._dtype = parameters[0].dtype
        self._rate_shapes = [(-1,) + (1,) * (parameter.dim() - 1) for parameter in parameters]
        self._learning_rates = torch.tensor(learning_rates, dtype=torch.float64, device=parameters[0].device)
        # 1 for a model in training, 0 for one that has ended: its rate, and so its updates, become zero.
        self._active = torch.ones_like(self._learning_rates)
        self._negative_rate_values: Tensor | None = None
        state_names = {"sgd": [], "momentum": ["momentum_buffer"], "adam": ["exp_avg", "exp_avg_sq"]}[kind]
        self._state = {
            name: [
                torch.zeros(parameter.shape, dtype=self._dtype, device=parameter.device)
                for parameter in parameters
            ]
            for name in state_names
        }
        self._refresh()

    @torch.no_grad()
    def step(self, parameters: list[Tensor], gradients: list[Tensor]) -> None:
        """Update `parameters` in place from their `gradients` (same order and shapes as at construction)."""
        if self.kind == "sgd":
            torch._foreach_addcmul_(parameters, gradients, self._negative_rates)
        elif self.kind == "momentum":
            buffers = self._state["momentum_buffer"]
            torch._foreach_mul_(buffers, MOMENTUM)
            torch._foreach_add_(buffers, gradients)
            torch._foreach_addcmul_(parameters, buffers, self._negative_rates)
        else:
            self._adam(parameters, gradients)

    def _adam(self, parameters: list[Tensor], gradients: list[Tensor]) -> None:
        self.steps_taken += 1
        beta1, beta2 = ADAM_BETAS
        exp_avgs, exp_avg_sqs = self._state["exp_avg"], self._state["exp_avg_sq"]
        torch._foreach_lerp_(exp_avgs, gradients, 1 - beta1)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, gradients, gradients, value=1 - beta2)
        bias_correction1 = 1 - beta1**self.steps_taken
        bias_correction2_sqrt = (1 - beta2**self.steps_taken) ** 0.5
        # torch: value = −(lr / bias_correction1) in double, rounded to the parameters' dtype by addcdiv.
        negative_step_sizes = (self._learning_rates * self._active / -bias_correction1).to(self._dtype)
        denominators = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(denominators, bias_correction2_sqrt)
        torch._foreach_add_(denominators, ADAM_EPS)
        # addcdiv computes p + (value·m) / d: multiplying m by the step size first keeps that rounding order.
        numerators = torch._foreach_mul(
            exp_avgs, [negative_step_sizes.view(shape) for shape in self._rate_shapes]
        )
        torch._foreach_addcdiv_(parameters, numerators, denominators)

    def deactivate(self, slots: Sequence[int]) -> None:
        """Stop updating the models at `slots`: from the next step their parameters stay as they are."""
        self._active.index_fill_(0, torch.tensor(list(slots), device=self._active.device), 0)
        self._refresh()

    def keep(self, slots: Sequence[int]) -> None:
        """Keep only the state of the models at `slots`, in that order (see `StackedMLP.keep`)."""
        index = torch.tensor(slots, dtype=torch.long, device=self._learning_rates.device)
        self._learning_rates = self._learning_rates.index_select(0, index)
        self._active = self._active.index_select(0, index)
        self._negative_rate_values = None
        self._state = {
            name: [tensor.index_select(0, index) for tensor in tensors]
            for name, tensors in self._state.items()
        }
        self._refresh()

    def state_tensors(self) -> list[Tensor]:
        """The optimizer state a step changes in place."""
        return [tensor for tensors in self._state.values() for tensor in tensors]

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "steps_taken": self.steps_taken,
            "learning_rates": self._learning_rates,
            "active": self._active,
            **self._state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["kind"] != self.kind:
            raise ValueError(f"optimizer state of {state['kind']!r} cannot resume {self.kind!r}")
        self.steps_taken = int(state["steps_taken"])
        self._learning_rates.copy_(state["learning_rates"])
        self._active.copy_(state["active"])
        for name, tensors in self._state.items():
            torch._foreach_copy_(tensors, state[name])
        self._refresh()

    def _refresh(self) -> None:
        """Recompute the rates the updates read; in place while the stack keeps its size, so that a captured
        CUDA graph goes on reading them (`core.ml.cuda_graphs`)."""
        # torch's `p.add_(g, alpha=-lr)` rounds −lr to the parameters' dtype too.
        negative_rates = (-self._learning_rates * self._active).to(self._dtype)
        if self._negative_rate_values is None:
            self._negative_rate_values = negative_rates
            self._negative_rates = [negative_rates.view(shape) for shape in self._rate_shapes]
        else:
            self._negative_rate_values.copy_(negative_rates)
