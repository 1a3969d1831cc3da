"""Loss-landscape probes along the gradient (Santurkar, Tsipras, Ilyas & Madry 2018, Fig. 4).

Santurkar et al. argue that BN helps optimization by making the loss landscape smoother, and measure it by
looking ahead along the gradient during training. At a probe step, with w the current parameters, g = ∇L(w)
on a fixed probe batch and step sizes η ∈ STEP_SIZE_MULTIPLES × learning rate, bnlab computes at each point
w − ηg
- the loss L(w − ηg); their range (max − min) is the "loss landscape" band of Fig. 4(a);
- gradient predictiveness, max over η of ‖∇L(w − ηg) − g‖₂ (Fig. 4(b)): how far the gradient moves within
  a step, i.e. how badly the gradient here predicts the gradient there (lower is more predictive);
- effective β-smoothness, max over η of ‖∇L(w − ηg) − g‖₂ / (η‖g‖₂) (Fig. 4(c)): the Lipschitz constant of
  the gradient measured along the step;
and also ‖g‖₂ and the scale-free max over η of ‖∇L(w − ηg) − g‖₂ / ‖g‖₂. Norms are over all parameters
taken as one vector (BN's γ and β included). The probe moves along the plain gradient whatever the
optimizer: it measures the landscape, not the optimizer's step.

The probe batch is the first `batch_size` training examples, the same at every probe. BN normalizes with
the statistics of a batch of the size training uses, so the probe sees the landscape the optimizer sees,
and a probe costs about five training steps (a forward and backward pass at w and at each of the four
points), whatever the net and batch size.

BN runs in training mode; dropout is off (the landscape is deterministic and no random number is drawn).
The probe moves the model's own parameters to each point in place — no model is copied — and puts them
back afterwards from copies taken when it started, together with BN's running averages (which every
training-mode forward pass updates); gradients come from `torch.autograd.grad`, which leaves the
parameters' `.grad` alone, and the optimizer is never called. So parameters, BN buffers, gradients, the
optimizer and every generator are bit for bit as they were, and a run follows the same trajectory with
probes on or off. The copies are allocated once per run, and everything stays on the device until one read
at the end of a probe.

The multi-tensor `torch._foreach_*` operations (the ones `torch.optim` steps with) move all the parameter
tensors in one call each: the probe's cost is mostly per-operation overhead on nets this small.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.results import LandscapeRecord
from core.spec import JobSpec

STEP_SIZE_MULTIPLES = (0.5, 1.0, 2.0, 4.0)  # × learning rate: the paper's range is [1/2, 4] × lr


class LandscapeProbe:
    """Probes one model's loss landscape on a fixed batch; built once per run, called at each probe step."""

    @classmethod
    def for_run(cls, model: nn.Module, train_x: Tensor, train_y: Tensor, spec: JobSpec) -> LandscapeProbe:
        """A run's probe: its first `batch_size` training examples, step sizes × its learning rate."""
        return cls(model, train_x[: spec.batch_size], train_y[: spec.batch_size], spec.learning_rate)

    def __init__(self, model: nn.Module, inputs: Tensor, labels: Tensor, learning_rate: float) -> None:
        self.model = model
        self.inputs = inputs
        self.labels = labels
        self.step_sizes = [multiple * learning_rate for multiple in STEP_SIZE_MULTIPLES]
        self.parameters: list[Tensor] = list(model.parameters())
        self.buffers = list(model.buffers())
        self.dropouts = [module for module in model.modules() if isinstance(module, nn.Dropout)]
        with torch.no_grad():
            self.saved_parameters = [parameter.detach().clone() for parameter in self.parameters]
            self.saved_buffers = [buffer.detach().clone() for buffer in self.buffers]
        self.step_size_tensor = torch.tensor(self.step_sizes, device=inputs.device)

    def __call__(self, step: int) -> LandscapeRecord:
        """Probe at the model's current parameters; `step` only labels the record."""
        was_training = self.model.training
        self.model.train()
        for dropout in self.dropouts:
            dropout.eval()
        self._save()
        try:
            figures = self._figures()
        finally:
            self._restore()
            self.model.train(was_training)  # dropout included
        values = figures.double().tolist()  # the one read from the device
        count = len(self.step_sizes)
        loss_range, predictiveness, beta_smoothness, grad_norm, relative_change = values[count:]
        return LandscapeRecord(
            step=step,
            step_sizes=list(self.step_sizes),
            losses=values[:count],
            loss_range=loss_range,
            gradient_predictiveness=predictiveness,
            beta_smoothness=beta_smoothness,
            grad_norm=grad_norm,
            relative_gradient_change=relative_change,
        )

    def _figures(self) -> Tensor:
        """[loss at each η…, loss range, predictiveness, β-smoothness, ‖g‖, max ‖Δg‖/‖g‖], on the device."""
        _, gradient = self._loss_and_gradient()
        gradient_norm = _global_norm(gradient)
        losses: list[Tensor] = []
        changes: list[Tensor] = []
        for step_size in self.step_sizes:
            with torch.no_grad():  # w − ηg, written into the model's parameters
                torch._foreach_copy_(self.parameters, self.saved_parameters)
                torch._foreach_add_(self.parameters, gradient, alpha=-step_size)
            loss, gradient_ahead = self._loss_and_gradient()
            losses.append(loss)
            changes.append(_global_norm(torch._foreach_sub(gradient_ahead, gradient)))
        loss_at = torch.stack(losses)
        change = torch.stack(changes)
        largest_change = change.max()
        return torch.cat(
            [
                loss_at,
                torch.stack(
                    [
                        loss_at.max() - loss_at.min(),
                        largest_change,
                        (change / (self.step_size_tensor * gradient_norm)).max(),
                        gradient_norm,
                        largest_change / gradient_norm,
                    ]
                ),
            ]
        )

    def _loss_and_gradient(self) -> tuple[Tensor, list[Tensor]]:
        """The probe batch's loss at the model's current parameters, and its gradient there."""
        with torch.enable_grad():
            loss = F.cross_entropy(self.model(self.inputs), self.labels)
            gradient = torch.autograd.grad(loss, self.parameters)
        return loss.detach(), list(gradient)

    def _save(self) -> None:
        with torch.no_grad():
            torch._foreach_copy_(self.saved_parameters, self.parameters)
            if self.buffers:
                torch._foreach_copy_(self.saved_buffers, self.buffers)

    def _restore(self) -> None:
        with torch.no_grad():
            torch._foreach_copy_(self.parameters, self.saved_parameters)
            if self.buffers:
                torch._foreach_copy_(self.buffers, self.saved_buffers)


def _global_norm(tensors: list[Tensor] | tuple[Tensor, ...]) -> Tensor:
    """‖(t₁, t₂, …)‖₂: the norm of all the tensors taken as one vector."""
    return torch.stack(torch._foreach_norm(tensors)).norm()


LossAndGradient = Callable[[], tuple[Tensor, list[Tensor]]]


def stacked_landscape(
    parameters: Sequence[Tensor],
    buffers: Sequence[Tensor],
    loss_and_gradient: LossAndGradient,
    learning_rates: Sequence[float],
    step: int,
) -> list[LandscapeRecord]:
    """The probe of every model of a stack at once: `parameters` and BN `buffers` are the stacks [M, ...],
    `loss_and_gradient()` each model's loss [M] on its probe batch (BN in training mode, no dropout) and the
    gradient of their sum, step sizes × each model's learning rate. The same figures as `LandscapeProbe`,
    each model's norms over its own parameters, ONE read for the stack; parameters and BN averages are put
    back bit for bit."""
    parameters, buffers = list(parameters), list(buffers)
    saved_parameters = [parameter.detach().clone() for parameter in parameters]
    saved_buffers = [buffer.clone() for buffer in buffers]
    shapes = [(-1,) + (1,) * (parameter.dim() - 1) for parameter in parameters]
    step_sizes = torch.tensor(  # [M, step sizes], in double as the lone probe's Python floats
        [[multiple * rate for multiple in STEP_SIZE_MULTIPLES] for rate in learning_rates],
        dtype=torch.float64,
        device=parameters[0].device,
    )
    try:
        _, gradient = loss_and_gradient()
        gradient_norm = _norms_per_model(gradient)
        losses: list[Tensor] = []
        changes: list[Tensor] = []
        for column in range(len(STEP_SIZE_MULTIPLES)):
            negative = (-step_sizes[:, column]).to(parameters[0].dtype)
            with torch.no_grad():  # w − ηg, written into the stacks
                torch._foreach_copy_(parameters, saved_parameters)
                torch._foreach_addcmul_(parameters, gradient, [negative.view(s) for s in shapes])
            loss, gradient_ahead = loss_and_gradient()
            losses.append(loss)
            changes.append(_norms_per_model(torch._foreach_sub(gradient_ahead, gradient)))
    finally:
        with torch.no_grad():
            torch._foreach_copy_(parameters, saved_parameters)
            if buffers:
                torch._foreach_copy_(buffers, saved_buffers)
    loss_at, change = torch.stack(losses, dim=1), torch.stack(changes, dim=1)  # [M, step sizes]
    largest_change = change.max(dim=1).values
    figures = torch.cat(
        [
            loss_at,
            torch.stack(
                [
                    loss_at.max(dim=1).values - loss_at.min(dim=1).values,
                    largest_change,
                    (change / (step_sizes.to(change.dtype) * gradient_norm.view(-1, 1))).max(dim=1).values,
                    gradient_norm,
                    largest_change / gradient_norm,
                ],
                dim=1,
            ),
        ],
        dim=1,
    )
    table = figures.double().tolist()  # the one read from the device
    count = len(STEP_SIZE_MULTIPLES)
    return [
        LandscapeRecord(
            step=step,
            step_sizes=[multiple * rate for multiple in STEP_SIZE_MULTIPLES],
            losses=values[:count],
            loss_range=values[count],
            gradient_predictiveness=values[count + 1],
            beta_smoothness=values[count + 2],
            grad_norm=values[count + 3],
            relative_gradient_change=values[count + 4],
        )
        for values, rate in zip(table, learning_rates, strict=True)
    ]


def _norms_per_model(tensors: list[Tensor] | tuple[Tensor, ...]) -> Tensor:
    """‖(t₁, t₂, …)‖₂ of each model's slices [M]: its norm over all its parameters taken as one vector."""
    return torch.stack([tensor.flatten(1).norm(dim=1) for tensor in tensors], dim=1).norm(dim=1)
