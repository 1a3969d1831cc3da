"""The models of a stack and how one training step updates all of them: what the trainer steps.

Two kinds, with one interface (`Stack`):
- `MLPStack`: M ≥ 1 MLPs with torch's BN or no normalization, as stacked tensors (`core.ml.fused_model`)
  updated by `core.ml.fused_optim`: one batched kernel per layer and per update for all M models, each
  model's learning rate and an `active` mask as [M] tensors. A job alone that is such an MLP trains this way.
- `NetStack`: M ≥ 1 nets of any other kind (CNNs as grouped convolutions, bnlab's own paper BN layer, layer
  and group norm, noisy BN) as stacked tensors (`core.ml.stacked_net`), gradients by autograd, the same
  optimizer.

Both give each model its seeded initial parameters (`build_model`), so a model's trajectory does not depend
on the stack it is in (to the bit on the CPU, see `core.ml.fused_model`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, Protocol, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor

from core.ml.fused_model import StackedMLP
from core.ml.fused_optim import MOMENTUM, StackedOptimizer
from core.ml.ics import stacked_ics
from core.ml.landscape import stacked_landscape
from core.ml.nets import build_model
from core.ml.stack_data import StackData
from core.ml.stacked_net import StackedNet
from core.ml.telemetry import stacked_telemetry
from core.results import LandscapeRecord, TelemetryRecord
from core.spec import JobSpec, MLPArchitecture

StackedModel = TypeVar("StackedModel", StackedMLP, StackedNet)


class Stack(Protocol):
    """M models trained in lockstep; rows are models, in the order they were built."""

    graphable: bool  # whether its step may be captured as a CUDA graph (`core.ml.cuda_graphs`)

    @property
    def size(self) -> int: ...

    def train_step(self, inputs: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """One update of every model from inputs [M, B, features] and labels [M·B]; returns each model's
        mean loss [M] and its logits [M, B, classes], on the device (nothing is read back)."""
        ...

    def evaluate(self, inputs: Tensor) -> Tensor:
        """Logits [M, R, classes] in eval mode (BN's running statistics, no dropout) of inputs [M, R, ...]."""
        ...

    def models_between(self, first: int, last: int) -> Stack:
        """Models [first, last) as a stack sharing this one's tensors (to evaluate a few at a time)."""
        ...

    def telemetry(self, inputs: Tensor, step: int, training: bool) -> list[list[TelemetryRecord]]:
        """Each model's telemetry records (`core.ml.telemetry`) on its probe inputs [M, P, features], BN in
        training mode (the probe's own statistics) or not (population statistics)."""
        ...

    def landscape(self, inputs: Tensor, labels: Tensor, step: int) -> list[LandscapeRecord]:
        """Each model's loss-landscape probe (`core.ml.landscape`) on its probe batch [M, B, features]."""
        ...

    def ics(self, inputs: Tensor, labels: Tensor) -> list[list[tuple[float, float]]]:
        """Each model's gradient-based ICS per hidden layer (`core.ml.ics`) on its batch [M, B, features]."""
        ...

    def draw_dropout_as(self, rows: Sequence[int], population: int) -> None:
        """Dropout masks drawn for `population` models, model m taking row `rows[m]` (after a resume)."""
        ...

    def deactivate(self, slots: Sequence[int]) -> None:
        """Models at `slots` have ended: their parameters no longer change (they stay in the stacks)."""
        ...

    def keep(self, slots: Sequence[int]) -> None:
        """Keep only the models at `slots`, in that order."""
        ...

    def state_tensors(self) -> list[Tensor]:
        """Every tensor a step changes in place (parameters, BN averages, optimizer state)."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def build_stack(specs: Sequence[JobSpec], data: StackData, device: torch.device) -> Stack:
    """An MLPStack for MLPs with torch's BN or none (written out, to the bit), else a NetStack."""
    first = specs[0]
    torch_batch_norm = first.normalization == "batch" and first.bn_implementation == "torch"
    written_out = first.normalization == "none" or (torch_batch_norm and first.bn_noise is None)
    if isinstance(first.architecture, MLPArchitecture) and written_out:
        return MLPStack(specs, data, device)
    return NetStack(specs, data, device)


def build_optimizer(spec: JobSpec, model: torch.nn.Module) -> torch.optim.Optimizer:
    """sgd: plain SGD; momentum: SGD with momentum 0.9; adam: Adam with torch's defaults besides the rate."""
    if spec.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=spec.learning_rate)
    momentum = MOMENTUM if spec.optimizer == "momentum" else 0.0
    return torch.optim.SGD(model.parameters(), lr=spec.learning_rate, momentum=momentum)


class _StackParts(Generic[StackedModel]):
    """What both kinds of stack keep and do alike: the stacked model and its optimizer, each model's
    learning rate and last gradients, the dropout generator; models leaving the stacks; checkpoints."""

    model: StackedModel
    optimizer: StackedOptimizer
    learning_rates: list[float]
    last_gradients: list[Tensor]
    dropout_generator: torch.Generator | None

    @property
    def size(self) -> int:
        return self.model.size

    def draw_dropout_as(self, rows: Sequence[int], population: int) -> None:
        self.model.draw_dropout_as(rows, population)

    def deactivate(self, slots: Sequence[int]) -> None:
        self.optimizer.deactivate(slots)

    def keep(self, slots: Sequence[int]) -> None:
        index = torch.tensor(list(slots), dtype=torch.long, device=self.model.device)
        self.learning_rates = [self.learning_rates[slot] for slot in slots]
        self.model.keep(slots)
        self.optimizer.keep(slots)
        self.last_gradients = [gradient.index_select(0, index) for gradient in self.last_gradients]

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "dropout_rng": None if self.dropout_generator is None else self.dropout_generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.dropout_generator is not None:
            self.dropout_generator.set_state(state["dropout_rng"])


class MLPStack(_StackParts[StackedMLP]):
    """M MLPs as stacked tensors: a forward and backward pass written out, one multi-tensor update."""

    def __init__(self, specs: Sequence[JobSpec], data: StackData, device: torch.device) -> None:
        nets = [build_model(spec, data.input_shape, data.num_classes) for spec in specs]
        self.activation = nets[0].activation
        self.model = StackedMLP(nets, specs, device)
        self.learning_rates = [spec.learning_rate for spec in specs]
        self.optimizer = StackedOptimizer(
            specs[0].optimizer, [spec.learning_rate for spec in specs], self.model.parameters
        )
        # Dropout masks come from the stack's own generator (a lone net's from torch's global one).
        self.dropout_generator: torch.Generator | None = None
        if any(spec.dropout > 0 for spec in specs):
            self.dropout_generator = torch.Generator(device=device).manual_seed(specs[0].seed)
        self.last_gradients: list[Tensor] = []
        # A step without dropout's generator and adam's step count reads only tensors: it can be captured.
        self.graphable = self.dropout_generator is None and self.optimizer.kind in ("sgd", "momentum")

    def train_step(self, inputs: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        # The loss is the sum of the models' mean losses: each model's gradient is its own loss's.
        losses, logits, gradients = self.model.loss_and_gradients(inputs, labels, self.dropout_generator)
        self.optimizer.step(self.model.parameters, gradients)
        self.last_gradients = gradients
        return losses, logits

    def state_tensors(self) -> list[Tensor]:
        model = self.model
        return [*model.parameters, *model.running_means, *model.running_vars, *self.optimizer.state_tensors()]

    def landscape(self, inputs: Tensor, labels: Tensor, step: int) -> list[LandscapeRecord]:
        """Every model's probe at once: one forward and backward pass per point for the stack, one read."""
        model, flat_labels = self.model, labels.reshape(-1)

        def loss_and_gradient() -> tuple[Tensor, list[Tensor]]:
            losses, _, gradients = model.loss_and_gradients(inputs, flat_labels, None, dropout=False)
            return losses, gradients

        buffers = model.running_means + model.running_vars
        return stacked_landscape(model.parameters, buffers, loss_and_gradient, self.learning_rates, step)

    def ics(self, inputs: Tensor, labels: Tensor) -> list[list[tuple[float, float]]]:
        """Every model at once: one forward and backward pass per hidden layer for the stack, one read."""
        model, flat_labels = self.model, labels.reshape(-1)

        def loss_and_gradient() -> tuple[Tensor, list[Tensor]]:
            losses, _, gradients = model.loss_and_gradients(inputs, flat_labels, None, dropout=False)
            return losses, gradients

        buffers = model.running_means + model.running_vars
        positions = model.hidden_weight_positions
        return stacked_ics(model.parameters, buffers, loss_and_gradient, self.learning_rates, positions)

    def telemetry(self, inputs: Tensor, step: int, training: bool) -> list[list[TelemetryRecord]]:
        """Every model's records in one batched probe and one read."""
        pre_activations = self.model.nonlinearity_inputs(inputs, training)  # [M, P, F] per hidden layer
        per_unit = [values.transpose(1, 2) for values in pre_activations]
        everything = [values.reshape(values.shape[0], -1) for values in pre_activations]
        norms = self.model.weight_gradient_norms(self.last_gradients)
        return stacked_telemetry(per_unit, everything, norms, self.activation, step)

    def evaluate(self, inputs: Tensor) -> Tensor:
        return self.model.forward(inputs)

    def models_between(self, first: int, last: int) -> MLPStack:
        part = object.__new__(MLPStack)
        part.model = self.model.models_between(first, last)
        return part


class NetStack(_StackParts[StackedNet]):
    """M nets of any other kind (CNNs, bnlab's paper BN) as stacked tensors, stepped through autograd."""

    graphable = False  # autograd's engine and its allocations are left uncaptured

    def __init__(self, specs: Sequence[JobSpec], data: StackData, device: torch.device) -> None:
        nets = [build_model(spec, data.input_shape, data.num_classes) for spec in specs]
        self.activation = nets[0].activation
        self.model = StackedNet(nets, specs, device)
        self.optimizer = StackedOptimizer(
            specs[0].optimizer, [spec.learning_rate for spec in specs], self.model.parameters
        )
        self.dropout_generator: torch.Generator | None = None
        if any(spec.dropout > 0 for spec in specs):
            self.dropout_generator = torch.Generator(device=device).manual_seed(specs[0].seed)
        self.input_shape = data.input_shape
        self.learning_rates = [spec.learning_rate for spec in specs]
        self.last_gradients: list[Tensor] = []

    def _losses_and_gradients(
        self, inputs: Tensor, labels: Tensor, dropout: bool
    ) -> tuple[Tensor, list[Tensor], Tensor]:
        """Each model's mean loss [M], the gradients of their sum (each its own loss's), the logits."""
        models, batch = inputs.shape[0], inputs.shape[1]
        with torch.enable_grad():
            generator = self.dropout_generator if dropout else None
            logits = self.model.forward(inputs, True, generator, dropout=dropout)
            per_example = F.cross_entropy(logits.flatten(0, 1), labels, reduction="none")
            losses = per_example.view(models, batch).mean(dim=1)
            gradients = list(torch.autograd.grad(losses.sum(), self.model.parameters))
        return losses.detach(), gradients, logits.detach()

    def train_step(self, inputs: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        shaped = inputs.view(*inputs.shape[:2], *self.input_shape)
        losses, gradients, logits = self._losses_and_gradients(shaped, labels, dropout=True)
        self.model.noise_step += 1  # noisy BN draws afresh at every update
        with torch.no_grad():
            self.optimizer.step([parameter.detach() for parameter in self.model.parameters], gradients)
        self.last_gradients = gradients
        return losses.detach(), logits.detach()

    def evaluate(self, inputs: Tensor) -> Tensor:
        models, rows = inputs.shape[0], inputs.shape[1]
        with torch.no_grad():
            return self.model.forward(inputs.view(models, rows, *self.input_shape), False, None)

    def models_between(self, first: int, last: int) -> NetStack:
        return self  # evaluation passes are bounded by rows, the stack's nets are small

    def landscape(self, inputs: Tensor, labels: Tensor, step: int) -> list[LandscapeRecord]:
        """Every model's probe at once: one forward and backward pass per point for the stack, one read."""
        model, flat_labels = self.model, labels.reshape(-1)
        shaped = inputs.view(*inputs.shape[:2], *self.input_shape)

        def loss_and_gradient() -> tuple[Tensor, list[Tensor]]:
            losses, gradients, _ = self._losses_and_gradients(shaped, flat_labels, dropout=False)
            return losses, gradients

        buffers = model.running_means + model.running_vars
        return stacked_landscape(model.parameters, buffers, loss_and_gradient, self.learning_rates, step)

    def ics(self, inputs: Tensor, labels: Tensor) -> list[list[tuple[float, float]]]:
        """Every model at once: one forward and backward pass per hidden layer for the stack, one read."""
        model, flat_labels = self.model, labels.reshape(-1)
        shaped = inputs.view(*inputs.shape[:2], *self.input_shape)

        def loss_and_gradient() -> tuple[Tensor, list[Tensor]]:
            losses, gradients, _ = self._losses_and_gradients(shaped, flat_labels, dropout=False)
            return losses, gradients

        buffers = model.running_means + model.running_vars
        positions = model.hidden_weight_positions
        return stacked_ics(model.parameters, buffers, loss_and_gradient, self.learning_rates, positions)

    def telemetry(self, inputs: Tensor, step: int, training: bool) -> list[list[TelemetryRecord]]:
        """Every model's records in one batched probe and one read."""
        shaped = inputs.view(*inputs.shape[:2], *self.input_shape)
        views = self.model.nonlinearity_inputs(shaped, training)
        norms = self.model.weight_gradient_norms(self.last_gradients)
        by_unit, everything = [view[0] for view in views], [view[1] for view in views]
        return stacked_telemetry(by_unit, everything, norms, self.activation, step)

    def state_tensors(self) -> list[Tensor]:
        model = self.model
        parameters = [parameter.detach() for parameter in model.parameters]
        return [*parameters, *model.running_means, *model.running_vars, *self.optimizer.state_tensors()]
