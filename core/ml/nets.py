"""The nets a job trains: an MLP and a small CNN, each with an optional normalization layer.

Every hidden layer is `weight layer → [normalization] → nonlinearity → [dropout]`: the normalization (the
spec's `normalization`: batch, layer or group) sits before the nonlinearity as BN does in the paper, the
weight layer feeding a BN has no bias (BN's β takes its place), dropout follows the nonlinearity. Layer norm
is torch's LayerNorm over an MLP layer's units and, for a conv layer, GroupNorm with one group (each
example's channels and positions together, with a scale and shift per channel); group norm is torch's
GroupNorm (`core.spec.groups_of`). The head is a plain linear layer.

Reproducibility: `build_model` seeds torch's global CPU generator with `spec.seed` as its first act and
builds on the CPU, so the initial parameters are a function of the spec alone, whatever ran before and
whichever device the model is moved to afterwards. A fused trainer rebuilds each model of a group this way
and stacks the parameters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, cast

import torch
from torch import Tensor, nn

from core.ml.batchnorm import PaperBatchNorm1d, PaperBatchNorm2d
from core.spec import CNNArchitecture, JobSpec, MLPArchitecture, groups_of

NONLINEARITIES: dict[str, type[nn.Module]] = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}


class Net(nn.Module):
    """A feed-forward classifier whose hidden layers are known by position, for telemetry.

    The forward pass is the plain `nn.Sequential` of the layers: telemetry costs nothing unless asked for,
    because `nonlinearity_inputs` registers its hooks only for the duration of one probe.
    """

    def __init__(self, layers: Sequence[nn.Module], activation: str) -> None:
        super().__init__()
        self.layers = nn.Sequential(*layers)
        self.activation = activation
        nonlinearity_type = NONLINEARITIES[activation]
        modules = list(self.layers)
        # Plain lists (not registered again): views onto modules that live in `self.layers`.
        self.nonlinearities = [module for module in modules if isinstance(module, nonlinearity_type)]
        self.hidden_weight_layers: list[nn.Linear | nn.Conv2d] = [
            module for module in modules[:-1] if isinstance(module, nn.Linear | nn.Conv2d)
        ]
        if not isinstance(modules[-1], nn.Linear):
            raise TypeError("a Net ends with its linear head")

    @property
    def head(self) -> nn.Linear:
        """The output layer (a property, so that it is not registered, and saved, a second time)."""
        return cast(nn.Linear, self.layers[-1])  # checked in __init__

    def forward(self, inputs: Tensor) -> Tensor:
        return self.layers(inputs)

    def nonlinearity_inputs(self, inputs: Tensor) -> list[Tensor]:
        """The input of each hidden nonlinearity on `inputs` (one tensor per hidden layer).

        BN runs in training mode — it normalizes with the statistics of `inputs` itself, exactly as it does
        during training — but its running averages are restored afterwards, and dropout is off, so a probe
        draws no random numbers and leaves the run exactly as it found it.
        """
        captured: list[Tensor] = []
        hooks = [
            module.register_forward_pre_hook(lambda _module, args: captured.append(args[0]))
            for module in self.nonlinearities
        ]
        saved_buffers = [buffer.clone() for buffer in self.buffers()]
        was_training = self.training
        self.train()
        for module in self.layers:
            if isinstance(module, nn.Dropout):
                module.eval()
        try:
            with torch.no_grad():
                self.layers(inputs)
        finally:
            for hook in hooks:
                hook.remove()
            with torch.no_grad():
                for buffer, saved in zip(self.buffers(), saved_buffers, strict=True):
                    buffer.copy_(saved)
            self.train(was_training)
        return captured


def build_model(spec: JobSpec, input_shape: Sequence[int], num_classes: int) -> Net:
    """The spec's net for inputs of `input_shape` (one example, no batch axis), on the CPU.

    Seeds torch's global generator with `spec.seed` first (see the module docstring).
    """
    torch.manual_seed(spec.seed)
    architecture = spec.architecture
    if isinstance(architecture, MLPArchitecture):
        layers = _mlp_layers(spec, architecture, input_shape, num_classes)
    else:
        layers = _cnn_layers(spec, architecture, input_shape, num_classes)
    model = Net(layers, architecture.activation)
    _initialize(model, spec)
    return model


def _mlp_layers(
    spec: JobSpec, architecture: MLPArchitecture, input_shape: Sequence[int], num_classes: int
) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for hidden_width in architecture.hidden:
        layers.append(nn.Linear(width, hidden_width, bias=not spec.batch_norm))
        layers.extend(_normalization(spec, hidden_width, spatial=False))
        layers.extend(_nonlinearity_and_dropout(spec, architecture.activation))
        width = hidden_width
    layers.append(nn.Linear(width, num_classes))
    return layers


def _cnn_layers(
    spec: JobSpec, architecture: CNNArchitecture, input_shape: Sequence[int], num_classes: int
) -> list[nn.Module]:
    if len(input_shape) != 3:
        raise ValueError(
            f"a cnn needs image inputs (channels, height, width), got shape {tuple(input_shape)}"
        )
    channels, height, width = input_shape
    layers: list[nn.Module] = []
    for out_channels in architecture.channels:
        if min(height, width) < 2:
            raise ValueError(
                f"{len(architecture.channels)} conv blocks shrink {tuple(input_shape)} to nothing"
            )
        # A 3x3 convolution with padding 1 keeps the size; the 2x2 max-pool halves it.
        layers.append(nn.Conv2d(channels, out_channels, kernel_size=3, padding=1, bias=not spec.batch_norm))
        layers.extend(_normalization(spec, out_channels, spatial=True))
        layers.extend(_nonlinearity_and_dropout(spec, architecture.activation))
        layers.append(nn.MaxPool2d(2))
        channels, height, width = out_channels, height // 2, width // 2
    layers.extend([nn.Flatten(), nn.Linear(channels * height * width, num_classes)])
    return layers


def _normalization(spec: JobSpec, features: int, *, spatial: bool) -> list[nn.Module]:
    """The spec's normalization layer for `features` units (channels), or none."""
    if spec.normalization == "batch":
        return [_batch_norm(spec, features, spatial=spatial)]
    if spec.normalization == "layer":
        layer_norm = (
            nn.GroupNorm(1, features, eps=spec.bn_eps) if spatial else nn.LayerNorm(features, eps=spec.bn_eps)
        )
        return [layer_norm]
    if spec.normalization == "group":
        return [nn.GroupNorm(groups_of(spec, features), features, eps=spec.bn_eps)]
    return []


def _batch_norm(spec: JobSpec, features: int, *, spatial: bool) -> nn.Module:
    if spec.bn_implementation == "bnlab":
        paper_type = PaperBatchNorm2d if spatial else PaperBatchNorm1d
        return paper_type(features, eps=spec.bn_eps, momentum=spec.bn_momentum)
    torch_type = nn.BatchNorm2d if spatial else nn.BatchNorm1d
    return torch_type(features, eps=spec.bn_eps, momentum=spec.bn_momentum)


def _nonlinearity_and_dropout(spec: JobSpec, activation: str) -> list[nn.Module]:
    layers = [NONLINEARITIES[activation]()]
    if spec.dropout > 0:
        layers.append(nn.Dropout(spec.dropout))
    return layers


def _initialize(model: Net, spec: JobSpec) -> None:
    """Re-initialize the weight layers per `spec.init`; `default` keeps torch's own initialization.

    he: Kaiming normal, xavier: Glorot uniform, both with the gain of the hidden nonlinearity (1 for the
    linear head); gaussian: N(0, init_std²) everywhere. Biases start at zero; BN's γ = 1 and β = 0 always.
    """
    if spec.init == "default":
        return
    for layer in [*model.hidden_weight_layers, model.head]:
        nonlinearity: Literal["linear", "sigmoid", "tanh", "relu"] = (
            "linear" if layer is model.head else spec.architecture.activation
        )
        if spec.init == "gaussian":
            nn.init.normal_(layer.weight, mean=0.0, std=spec.init_std)
        elif spec.init == "he":
            nn.init.kaiming_normal_(layer.weight, nonlinearity=nonlinearity)
        else:
            nn.init.xavier_uniform_(layer.weight, gain=nn.init.calculate_gain(nonlinearity))
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
