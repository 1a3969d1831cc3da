"""M MLPs of one architecture as stacked tensors: one batched kernel per layer trains all of them.

Parameters. Each parameter of the architecture is one tensor [M, ...] holding it for every model: a
layer's weight [M, out, in] (nn.Linear's layout), its bias, BN γ and BN β [M, F]. These are the autograd
leaves; the optimizer updates them in place. A layer is one `torch.bmm` for all models that computes and
differentiates the very products a separate run's `F.linear` does (`x @ Wᵀ` forwards, `g @ W` and `gᵀ @ x`
backwards; autograd's own bmm backward would compute `xᵀ @ g` for the weight, which rounds differently
for some shapes).

Activations. A batch is [M, B, features]: row m holds model m's own examples. With BN a layer's
pre-activations are laid out as [B, M·F] — channel m·F + f is unit f of model m — so that ONE native
`F.batch_norm` call normalizes every unit of every model over that model's own batch and updates per-model
running statistics (buffers [M·F]); eval mode uses them, exactly as a separate run's `BatchNorm1d` does.
`F.batch_norm` takes one eps and one momentum: the trainer orders models by (eps, momentum) and this module
makes one call per run of equal values (one call when they agree, the usual case).

Dropout has a per-model rate; its masks come from the group's own generator, not from torch's global
one, so they differ from a separate run's masks: with dropout, fused and separate runs agree in
distribution, not value by value.

`bind` points a per-model `Net` at its slice of the stacks (views, no copies), so that code written for one
`Net` — telemetry probes — sees the fused model as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.ml.nets import Net
from core.spec import JobSpec

# In place: neither a linear layer nor batch_norm keeps its output for the backward pass, so the
# nonlinearity may overwrite it rather than fill a fresh tensor (the same values, less memory traffic).
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "sigmoid": torch.sigmoid_,
    "tanh": torch.tanh_,
    "relu": torch.relu_,
}


@dataclass(frozen=True)
class _Layer:
    """Where one weight layer's parameters are in `StackedMLP.parameters` (None: the layer has none)."""

    weight: int
    bias: int | None
    bn_weight: int | None
    bn_bias: int | None
    norm: int | None  # which of the running-statistics buffers its BN keeps
    width: int  # output features


@dataclass(frozen=True)
class _NormalizationRun:
    """Consecutive models [first, last) sharing BN's eps and momentum: one batch_norm call."""

    first: int
    last: int
    eps: float
    momentum: float


class StackedMLP:
    """The parameters, BN buffers and per-model settings of M models, and their batched forward pass."""

    def __init__(self, nets: Sequence[Net], specs: Sequence[JobSpec], device: torch.device) -> None:
        if not nets or len(nets) != len(specs):
            raise ValueError("a stacked model needs one spec per net, and at least one net")
        self.device = device
        self.activation = ACTIVATIONS[nets[0].activation]
        self._layers = _layers(nets[0], _parameter_places(nets[0]))
        per_net = [
            [getattr(module, name).detach() for module, name in _parameter_places(net)] for net in nets
        ]
        self.parameters = [
            torch.stack(parameters).to(device).requires_grad_() for parameters in zip(*per_net, strict=True)
        ]
        norms = [[module for module in net.layers if isinstance(module, nn.BatchNorm1d)] for net in nets]
        self.running_means = [
            torch.stack([_buffer(layers[index], "running_mean") for layers in norms]).to(device)
            for index in range(len(norms[0]))
        ]
        self.running_vars = [
            torch.stack([_buffer(layers[index], "running_var") for layers in norms]).to(device)
            for index in range(len(norms[0]))
        ]
        self._dropout_rates = [spec.dropout for spec in specs]
        self._normalization = [(spec.bn_eps, spec.bn_momentum) for spec in specs]
        self._refresh()

    @property
    def size(self) -> int:
        """M, the number of models stacked."""
        return self.parameters[0].shape[0]

    def forward(self, inputs: Tensor, *, training: bool, generator: torch.Generator | None = None) -> Tensor:
        """Logits [M, B, classes] of every model on its own inputs [M, B, features].

        training: BN normalizes with batch statistics and updates the running ones, dropout is on (masks drawn
        from `generator`); otherwise BN uses the running statistics and there is no dropout.
        """
        hidden = inputs
        for layer in self._layers[:-1]:
            weight = self.parameters[layer.weight]
            if layer.bias is not None:
                hidden = self.activation(_linear(hidden, weight, self.parameters[layer.bias]))
            else:
                hidden = self._normalize_and_activate(_linear(hidden, weight, None), layer, training)
            if training and self._any_dropout:
                hidden = hidden * self._dropout_scale(hidden.shape, generator)
        head = self._layers[-1]
        assert head.bias is not None  # the head is a plain linear layer
        return _linear(hidden, self.parameters[head.weight], self.parameters[head.bias])

    def keep(self, slots: Sequence[int]) -> None:
        """Keep only the models at `slots` (in that order): the others leave the stacks for good."""
        index = torch.tensor(slots, dtype=torch.long, device=self.device)
        self.parameters = [
            parameter.detach().index_select(0, index).requires_grad_() for parameter in self.parameters
        ]
        self.running_means = [buffer.index_select(0, index) for buffer in self.running_means]
        self.running_vars = [buffer.index_select(0, index) for buffer in self.running_vars]
        self._dropout_rates = [self._dropout_rates[slot] for slot in slots]
        self._normalization = [self._normalization[slot] for slot in slots]
        self._refresh()

    def state_dict(self) -> dict[str, Any]:
        return {
            "parameters": [parameter.detach() for parameter in self.parameters],
            "running_means": self.running_means,
            "running_vars": self.running_vars,
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        tensors = self.parameters + self.running_means + self.running_vars
        saved = state["parameters"] + state["running_means"] + state["running_vars"]
        if [tensor.shape for tensor in tensors] != [tensor.shape for tensor in saved]:
            raise ValueError("the saved stacks do not fit this group's models")
        torch._foreach_copy_(tensors, saved)

    def bind(self, nets: Sequence[Net]) -> None:
        """Make `nets[m]`'s parameters and BN buffers views of model m's slices (nets in stack order)."""
        for slot, net in enumerate(nets):
            for (module, name), parameter in zip(_parameter_places(net), self.parameters, strict=True):
                getattr(module, name).data = parameter.detach()[slot]
            norms = [module for module in net.layers if isinstance(module, nn.BatchNorm1d)]
            for norm, means, variances in zip(norms, self.running_means, self.running_vars, strict=True):
                norm.running_mean = means[slot]
                norm.running_var = variances[slot]

    def bind_gradients(self, nets: Sequence[Net], gradients: Sequence[Tensor]) -> None:
        """Give `nets[m]`'s weight layers model m's slices of `gradients` (what telemetry reads)."""
        for slot, net in enumerate(nets):
            for (module, name), gradient in zip(_parameter_places(net), gradients, strict=True):
                getattr(module, name).grad = gradient[slot]

    def _refresh(self) -> None:
        """Derive the per-model settings' tensors and BN runs after the set of models changed."""
        rates = torch.tensor(self._dropout_rates, dtype=self.parameters[0].dtype, device=self.device)
        self._any_dropout = any(rate > 0 for rate in self._dropout_rates)
        self._dropout_rates_tensor = rates
        self._dropout_scales = 1 / (1 - rates)
        self._runs: list[_NormalizationRun] = []
        for slot, (eps, momentum) in enumerate(self._normalization):
            if self._runs and (self._runs[-1].eps, self._runs[-1].momentum) == (eps, momentum):
                self._runs[-1] = _NormalizationRun(self._runs[-1].first, slot + 1, eps, momentum)
            else:
                self._runs.append(_NormalizationRun(slot, slot + 1, eps, momentum))

    def _normalize_and_activate(self, pre_activation: Tensor, layer: _Layer, training: bool) -> Tensor:
        """BN, then the nonlinearity, of pre-activations [M, B, F]; one batch_norm call per run of models.

        A run's pre-activations are laid out as [B, M·F] for the call and returned as a [M, B, F] view. Each
        call reads a contiguous input and (in the backward pass) gets a contiguous gradient: batch_norm
        reduces strided tensors in another order, which would round differently from a separate run.
        """
        assert layer.bn_weight is not None and layer.bn_bias is not None and layer.norm is not None
        batch, width = pre_activation.shape[1], layer.width
        scale, shift = self.parameters[layer.bn_weight].view(-1), self.parameters[layer.bn_bias].view(-1)
        means, variances = self.running_means[layer.norm].view(-1), self.running_vars[layer.norm].view(-1)
        outputs = []
        for run in self._runs:
            models, channels = run.last - run.first, slice(run.first * width, run.last * width)
            vectors = (means, variances, scale, shift)
            if models == self.size:  # the usual case: no slicing (a slice costs a zero-filled gradient)
                inputs = pre_activation
            else:
                inputs = pre_activation[run.first : run.last]
                vectors = (means[channels], variances[channels], scale[channels], shift[channels])
            normalized = F.batch_norm(
                inputs.transpose(0, 1).reshape(batch, models * width),
                *vectors,
                training=training,
                momentum=run.momentum,
                eps=run.eps,
            )
            outputs.append(self.activation(normalized).view(batch, models, width).transpose(0, 1))
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs)

    def _dropout_scale(self, shape: torch.Size, generator: torch.Generator | None) -> Tensor:
        """Inverted dropout: 0 with each model's rate, else 1 / (1 - rate), as torch's dropout scales."""
        uniform = torch.rand(shape, generator=generator, device=self.device, dtype=self.parameters[0].dtype)
        kept = uniform >= self._dropout_rates_tensor.view(-1, 1, 1)
        return torch.where(kept, self._dropout_scales.view(-1, 1, 1), 0.0)


class _StackedLinear(torch.autograd.Function):
    """x @ Wᵀ + b for M models, x [M, B, in], W [M, out, in], b [M, out] or None, as F.linear does it."""

    @staticmethod
    def forward(ctx: Any, inputs: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(inputs, weight)
        ctx.has_bias = bias is not None
        transposed = weight.transpose(1, 2)
        if bias is None:
            return torch.bmm(inputs, transposed)
        return torch.baddbmm(bias.unsqueeze(1), inputs, transposed)

    @staticmethod
    def backward(ctx: Any, gradient: Tensor) -> tuple[Tensor | None, Tensor, Tensor | None]:
        inputs, weight = ctx.saved_tensors
        # Behind a BN layer the gradient arrives as a [B, M, F] layout seen through a transpose; one copy
        # costs less than what the strided operand costs both products.
        gradient = gradient.contiguous()
        input_gradient = torch.bmm(gradient, weight) if ctx.needs_input_grad[0] else None
        weight_gradient = torch.bmm(gradient.transpose(1, 2), inputs)
        bias_gradient = gradient.sum(dim=1) if ctx.has_bias else None
        return input_gradient, weight_gradient, bias_gradient


def _linear(inputs: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    output: Tensor = _StackedLinear.apply(inputs, weight, bias)
    return output


def _parameter_places(net: Net) -> list[tuple[nn.Module, str]]:
    """Every parameter of `net` as (module, attribute), in the order of `StackedMLP.parameters`."""
    places: list[tuple[nn.Module, str]] = []
    for module in net.layers:
        if isinstance(module, nn.Linear):
            places.append((module, "weight"))
            if module.bias is not None:
                places.append((module, "bias"))
        elif isinstance(module, nn.BatchNorm1d):
            places.extend([(module, "weight"), (module, "bias")])
        elif any(True for _ in module.parameters()):
            raise TypeError(f"a stacked MLP cannot hold a {type(module).__name__}")
    return places


def _buffer(module: nn.Module, name: str) -> Tensor:
    buffer = getattr(module, name)
    if not isinstance(buffer, Tensor):
        raise TypeError(f"{type(module).__name__} keeps no {name}")
    return buffer


def _layers(net: Net, places: list[tuple[nn.Module, str]]) -> list[_Layer]:
    """Each weight layer of `net` with the positions of its parameters and of the BN that follows it."""
    position = {(id(module), name): index for index, (module, name) in enumerate(places)}
    layers: list[_Layer] = []
    norms = 0
    modules = list(net.layers)
    for index, module in enumerate(modules):
        if not isinstance(module, nn.Linear):
            continue
        following = modules[index + 1] if index + 1 < len(modules) else None
        norm = following if isinstance(following, nn.BatchNorm1d) else None
        layers.append(
            _Layer(
                weight=position[(id(module), "weight")],
                bias=position.get((id(module), "bias")),
                bn_weight=None if norm is None else position[(id(norm), "weight")],
                bn_bias=None if norm is None else position[(id(norm), "bias")],
                norm=None if norm is None else norms,
                width=module.out_features,
            )
        )
        norms += norm is not None
    return layers
