"""What `core.ml.fused_model.StackedMLP` is built from: where each net's parameters sit in the stacks (its
weight layers and the BN after each), what a hidden layer's backward pass keeps from its forward pass, the
two kernels its passes share — a batched linear map and cross-entropy with its gradient, as autograd would
compute them — and two small helpers (`core.ml.stacked_batch_norm` shares them too)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from core.ml.nets import Net

NO_REDUCTION = 0  # ATen's Reduction::None
IGNORE_INDEX = -100  # cross_entropy's default: no class is ignored


@dataclass(frozen=True)
class StackedLayer:
    """Where one weight layer's parameters are in `StackedMLP.parameters` (None: the layer has none)."""

    weight: int
    bias: int | None
    bn_weight: int | None
    bn_bias: int | None
    norm: int | None  # which of the running-statistics buffers its BN keeps
    width: int  # output features


@dataclass
class LayerTape:
    """What one hidden layer's backward pass needs from its forward pass."""

    inputs: Tensor  # the layer's input [M, B, in]
    activated: Tensor | None = None  # the nonlinearity's output [M, B, F]
    # With BN: its input, model-major [M, B, F] and, per run of models, as the forward call took it
    # [B, m·F]; and each run's batch statistics [m·F].
    normalized_inputs: Tensor | None = None
    run_inputs: list[Tensor] = field(default_factory=list)
    saved_means: list[Tensor] = field(default_factory=list)
    saved_inverse_stds: list[Tensor] = field(default_factory=list)
    dropout_scale: Tensor | None = None


def stacked_linear(inputs: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """x @ Wᵀ + b for M models: x [M, B, in], W [M, out, in], b [M, out] or None — F.linear's product."""
    transposed = weight.transpose(1, 2)
    if bias is None:
        return torch.bmm(inputs, transposed)
    return torch.baddbmm(bias.unsqueeze(1), inputs, transposed)


def cross_entropy_and_gradient(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Each model's mean cross-entropy [M] on logits [M, B, classes], and the gradient of their sum.

    cross_entropy is nll_loss of log_softmax: the same two kernels, then their backward passes, with the
    gradient of each model's mean (1/B per example) that autograd would feed them.
    """
    models, batch = logits.shape[0], logits.shape[1]
    log_probabilities = torch.log_softmax(logits.view(models * batch, -1), dim=1)
    per_example, total_weight = torch.ops.aten.nll_loss_forward(
        log_probabilities, labels, None, NO_REDUCTION, IGNORE_INDEX
    )
    per_example_gradient = torch.ones_like(per_example).div_(batch)
    log_probability_gradient = torch.ops.aten.nll_loss_backward(
        per_example_gradient, log_probabilities, labels, None, NO_REDUCTION, IGNORE_INDEX, total_weight
    )
    logits_gradient = torch.ops.aten._log_softmax_backward_data(
        log_probability_gradient, log_probabilities, 1, log_probabilities.dtype
    )
    return per_example.view(models, batch).mean(dim=1), logits_gradient.view(models, batch, -1)


def parameter_places(net: Net) -> list[tuple[nn.Module, str]]:
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


def module_buffer(module: nn.Module, name: str) -> Tensor:
    buffer = getattr(module, name)
    if not isinstance(buffer, Tensor):
        raise TypeError(f"{type(module).__name__} keeps no {name}")
    return buffer


def weight_layers(net: Net, places: list[tuple[nn.Module, str]]) -> list[StackedLayer]:
    """Each weight layer of `net` with the positions of its parameters and of the BN that follows it."""
    position = {(id(module), name): index for index, (module, name) in enumerate(places)}
    layers: list[StackedLayer] = []
    norms = 0
    modules = list(net.layers)
    for index, module in enumerate(modules):
        if not isinstance(module, nn.Linear):
            continue
        following = modules[index + 1] if index + 1 < len(modules) else None
        norm = following if isinstance(following, nn.BatchNorm1d) else None
        layers.append(
            StackedLayer(
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


def joined_runs(parts: list[Tensor]) -> Tensor:
    """The runs' parts of a tensor, concatenated along the models' dimension (no copy for one run)."""
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def present(gradient: Tensor | None) -> Tensor:
    """A gradient that the backward pass must have filled in."""
    if gradient is None:
        raise AssertionError("a parameter got no gradient")
    return gradient
