"""M nets of any architecture bnlab builds — CNNs, MLPs with the paper's BN — as stacked tensors, by autograd.

`core.ml.fused_model` writes out an MLP with torch's BN by hand, to the bit; everything else (CNNs, paper
BN, layer and group norm) stacks here:
each parameter of the architecture is one leaf tensor [M, ...], each BN buffer one [M, channels] tensor,
and a forward pass interprets the net's layers on the stack:
- an MLP's activations are [M, B, F]: a linear layer is one baddbmm/bmm;
- a CNN's activations are [B, M·C, H, W] — channel m·C + c is channel c of model m — so that a convolution
  is ONE grouped convolution (groups = M, weight [M·out, in, 3, 3]), torch's BN2d one `batch_norm` call per
  run of models sharing eps and momentum (over the stacked channels: each model's channels over its own
  batch), max-pooling and the nonlinearity one call each; the flattened features go to [M, B, F] for the
  head;
- bnlab's paper BN (Algorithm 1, `core.ml.batchnorm`) is written on the stack with each model's eps and
  momentum as tensors: one set of reductions for all M models;
- layer and group norm (torch's LayerNorm, GroupNorm) normalize each example alone: one set of reductions
  for all M models, each model's eps a tensor;
- noisy BN (`core.ml.bn_noise`) shifts and rescales each BN layer's output in training steps, each model's
  draws from its own seed and the step count (`noise_step`, saved with the stacks);
- dropout masks come from the stack's generator with each model's rate.
Gradients come from autograd on the sum of the models' mean losses (each model's gradient is its own loss's),
and `core.ml.fused_optim` updates the stacks. A stack of one computes what the net alone computes, with the
same kernels; larger stacks agree with lone runs to rounding (grouped and single convolutions may take other
kernel paths).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.ml.batchnorm import PaperBatchNorm1d, PaperBatchNorm2d
from core.ml.bn_noise import shifts_and_scales
from core.ml.nets import NONLINEARITIES, Net
from core.spec import JobSpec

NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, PaperBatchNorm1d, PaperBatchNorm2d)  # with running statistics
PER_EXAMPLE_NORMS = (nn.LayerNorm, nn.GroupNorm)  # each example normalized alone: no running statistics


class StackedNet:
    """The parameters and BN buffers of M nets of one architecture, and their batched forward pass."""

    def __init__(self, nets: Sequence[Net], specs: Sequence[JobSpec], device: torch.device) -> None:
        self.device = device
        # The architecture; its own tensors are never used. A net with dropout has the layers a net without
        # lacks (dropout's have no tensors): take its, a model with rate 0 keeps every value.
        template = next((net for net in nets if any(isinstance(m, nn.Dropout) for m in net.layers)), nets[0])
        self.layers = list(template.layers)
        self.parameters = [
            torch.stack([parameter.detach() for parameter in per_model]).to(device).requires_grad_()
            for per_model in zip(*(net.parameters() for net in nets), strict=True)
        ]
        norms = [[module for module in net.layers if isinstance(module, NORMS)] for net in nets]
        self.running_means = [
            torch.stack([_buffer(n[i], "running_mean") for n in norms]).to(device)
            for i in range(len(norms[0]))
        ]
        self.running_vars = [
            torch.stack([_buffer(n[i], "running_var") for n in norms]).to(device)
            for i in range(len(norms[0]))
        ]
        dtype = self.parameters[0].dtype
        self.eps = torch.tensor([spec.bn_eps for spec in specs], dtype=dtype, device=device)
        self.momentum = torch.tensor([spec.bn_momentum for spec in specs], dtype=dtype, device=device)
        self.dropout_rates = torch.tensor([spec.dropout for spec in specs], dtype=dtype, device=device)
        self._normalization = [(spec.bn_eps, spec.bn_momentum) for spec in specs]
        noises = [spec.bn_noise for spec in specs]
        self.noisy = any(noise is not None for noise in noises)
        self.noise_seeds = torch.tensor([spec.seed for spec in specs], dtype=torch.long, device=device)
        self.noise_mean_stds = torch.tensor([n.mean_std if n else 0.0 for n in noises], device=device)
        self.noise_scale_stds = torch.tensor([n.scale_std if n else 0.0 for n in noises], device=device)
        self.noise_step = 0  # training steps taken: which draw of noisy BN comes next
        positions = {id(parameter): index for index, parameter in enumerate(nets[0].parameters())}
        self._hidden_weights = [positions[id(layer.weight)] for layer in nets[0].hidden_weight_layers]
        self.dropout_population = len(nets)  # as `StackedMLP`: masks do not depend on who left the stack
        self.dropout_rows: Tensor | None = None

    @property
    def size(self) -> int:
        return self.parameters[0].shape[0]

    def forward(
        self,
        inputs: Tensor,
        training: bool,
        generator: torch.Generator | None,
        captured: list[Tensor] | None = None,
        dropout: bool = True,
    ) -> Tensor:
        """Logits [M, B, classes] of inputs [M, B, ...] (each model's own examples); with `captured`, each
        nonlinearity's input is appended to it. Dropout only in training, with `dropout` and no `captured`;
        noisy BN's noise (the draw of step `noise_step`) in training, with `dropout` or `captured`."""
        models, batch = inputs.shape[0], inputs.shape[1]
        values = inputs
        parameters = iter(self.parameters)
        norm_index = 0
        for module in self.layers:
            if isinstance(module, nn.Flatten):
                if values.dim() == 4:  # [B, M·C, h, w] → [M, B, C·h·w]
                    values = values.reshape(batch, models, -1).transpose(0, 1)
                else:  # an MLP's inputs [M, B, ...]
                    values = values.reshape(models, batch, -1)
            elif isinstance(module, nn.Conv2d):
                if values.dim() == 5:  # [M, B, C, H, W] → [B, M·C, H, W]
                    values = values.transpose(0, 1).reshape(batch, -1, *values.shape[3:])
                weight = next(parameters)
                bias = next(parameters) if module.bias is not None else None
                values = F.conv2d(
                    values,
                    weight.reshape(-1, *weight.shape[2:]),
                    None if bias is None else bias.reshape(-1),
                    padding=module.padding,
                    groups=models,
                )
            elif isinstance(module, nn.Linear):
                weight = next(parameters)
                transposed = weight.transpose(1, 2)
                if module.bias is None:
                    values = torch.bmm(values, transposed)
                else:
                    values = torch.baddbmm(next(parameters).unsqueeze(1), values, transposed)
            elif isinstance(module, NORMS):
                scale, shift = next(parameters), next(parameters)
                values = self._normalize(module, values, scale, shift, norm_index, training)
                # Training steps add the noise, and so does a train-mode probe (`captured`): the nonlinearity
                # sees it in training. Landscape and ICS passes (`dropout` off, nothing captured) do not.
                if self.noisy and training and (dropout or captured is not None):
                    values = self._add_noise(values, norm_index)
                norm_index += 1
            elif isinstance(module, PER_EXAMPLE_NORMS):
                scale, shift = next(parameters), next(parameters)
                groups = module.num_groups if isinstance(module, nn.GroupNorm) else 1
                values = self._normalize_per_example(values, scale, shift, groups)
            elif isinstance(module, tuple(NONLINEARITIES.values())):
                if captured is not None:
                    captured.append(values)
                values = module(values)
            elif isinstance(module, nn.Dropout):
                if training and dropout and captured is None:
                    values = values * self._dropout_scale(values, generator)
            elif isinstance(module, nn.MaxPool2d):
                values = F.max_pool2d(values, module.kernel_size)
            else:
                raise TypeError(f"a stacked net cannot hold a {type(module).__name__}")
        return values

    def _normalize(
        self, module: nn.Module, values: Tensor, scale: Tensor, shift: Tensor, index: int, training: bool
    ) -> Tensor:
        means, variances = self.running_means[index], self.running_vars[index]
        if isinstance(module, PaperBatchNorm1d | PaperBatchNorm2d):
            return self._paper_normalize(values, scale, shift, means, variances, training)
        # torch's BN: one call per run of models sharing eps and momentum, over their stacked channels.
        outputs = []
        first = 0
        for (eps, momentum), count in _runs(self._normalization):
            last = first + count
            if values.dim() == 3:  # [M, B, F]: the run's models side by side as [B, m·F]
                width = values.shape[2]
                part = values[first:last].transpose(0, 1).reshape(values.shape[1], -1)
                normalized = F.batch_norm(
                    part,
                    means[first:last].view(-1),
                    variances[first:last].view(-1),
                    scale[first:last].reshape(-1),
                    shift[first:last].reshape(-1),
                    training,
                    momentum,
                    eps,
                )
                outputs.append(normalized.view(-1, count, width).transpose(0, 1))
            else:  # [B, M·C, H, W]
                channels = values.shape[1] // self.size
                normalized = F.batch_norm(
                    values[:, first * channels : last * channels],
                    means[first:last].view(-1),
                    variances[first:last].view(-1),
                    scale[first:last].reshape(-1),
                    shift[first:last].reshape(-1),
                    training,
                    momentum,
                    eps,
                )
                outputs.append(normalized)
            first = last
        if len(outputs) == 1:
            return outputs[0]
        return torch.cat(outputs, dim=0 if values.dim() == 3 else 1)

    def _add_noise(self, values: Tensor, layer: int) -> Tensor:
        """Noisy BN's s · y + m on BN layer `layer`'s output, the draws of the current training step."""
        models = self.size
        units = values.shape[2] if values.dim() == 3 else values.shape[1] // models
        shifts, scales = shifts_and_scales(
            self.noise_seeds,
            self.noise_mean_stds,
            self.noise_scale_stds,
            self.noise_step,
            layer,
            units,
            values.dtype,
        )
        per_unit = (models, 1, units) if values.dim() == 3 else (1, models * units, 1, 1)
        return values * scales.view(per_unit) + shifts.view(per_unit)

    def _normalize_per_example(self, values: Tensor, scale: Tensor, shift: Tensor, groups: int) -> Tensor:
        """Layer or group norm on the stack, each model's eps: every example's units (channels and positions)
        in `groups` consecutive groups, each standardized by its own mean and biased variance, then each
        unit (channel) scaled and shifted, as torch's LayerNorm and GroupNorm compute it."""
        models = self.size
        per_unit: tuple[int, ...]
        if values.dim() == 3:  # [M, B, F]
            grouped = values.reshape(models, values.shape[1], groups, -1)
            eps, per_unit = self.eps.view(models, 1, 1, 1), (models, 1, -1)
        else:  # [B, M·C, H, W]: model m's channels are m·C … m·C + C − 1, each group within one model
            grouped = values.reshape(values.shape[0], models, groups, -1)
            eps, per_unit = self.eps.view(1, models, 1, 1), (1, -1, 1, 1)
        mean = grouped.mean(dim=-1, keepdim=True)
        variance = grouped.var(dim=-1, unbiased=False, keepdim=True)
        normalized = ((grouped - mean) / torch.sqrt(variance + eps)).reshape(values.shape)
        return normalized * scale.reshape(per_unit) + shift.reshape(per_unit)

    def _paper_normalize(
        self, values: Tensor, scale: Tensor, shift: Tensor, means: Tensor, variances: Tensor, training: bool
    ) -> Tensor:
        """Algorithm 1 on the stack: each model's channels over its own batch (and positions)."""
        models = self.size
        reduced: tuple[int, ...]
        per_channel: tuple[int, ...]
        per_model: tuple[int, ...]
        if values.dim() == 3:  # [M, B, F]
            view, reduced, per_channel, per_model = values, (1,), (models, 1, -1), (models, 1, 1)
        else:  # [B, M·C, H, W] seen as [B, M, C, H·W]
            view = values.reshape(values.shape[0], models, -1, values.shape[2] * values.shape[3])
            reduced, per_channel, per_model = (0, 3), (1, models, -1, 1), (1, models, 1, 1)
        if training:
            count = view.numel() // (models * view.shape[-2 if values.dim() == 4 else -1])
            mean = view.mean(dim=reduced, keepdim=True)
            centered = view - mean
            variance = (centered * centered).mean(dim=reduced, keepdim=True)  # biased: divides by m
            with torch.no_grad():
                weight = self.momentum.view(models, 1)
                means.lerp_(mean.reshape(models, -1), weight)
                variances.lerp_((variance * (count / (count - 1))).reshape(models, -1), weight)
        else:
            centered = view - means.view(per_channel)
            variance = variances.view(per_channel)
        normalized = centered / torch.sqrt(variance + self.eps.view(per_model))
        result = normalized * scale.view(per_channel) + shift.view(per_channel)
        return result.reshape(values.shape)

    def _dropout_scale(self, values: Tensor, generator: torch.Generator | None) -> Tensor:
        """Inverted dropout with each model's rate: 0, else 1 / (1 − rate)."""
        models = self.size
        shape = (models, 1, 1) if values.dim() == 3 else (1, models, 1, 1, 1)
        grouped = values if values.dim() == 3 else values.view(values.shape[0], models, -1, *values.shape[2:])
        axis = 0 if values.dim() == 3 else 1
        population = list(grouped.shape)
        population[axis] = self.dropout_population
        uniform = torch.rand(population, generator=generator, device=values.device, dtype=values.dtype)
        if self.dropout_rows is not None:
            uniform = uniform.index_select(axis, self.dropout_rows)
        rates = self.dropout_rates.view(shape)
        scale = torch.where(uniform >= rates, 1 / (1 - rates), 0.0)
        return scale if values.dim() == 3 else scale.view(values.shape)

    @torch.no_grad()
    def nonlinearity_inputs(self, inputs: Tensor, training: bool = True) -> list[tuple[Tensor, Tensor]]:
        """Each hidden nonlinearity's input on inputs [M, P, ...] without dropout, as training sees it (BN
        with the batch's own statistics) or with `training` off as inference does (BN's running statistics),
        as (by unit [M, units, values], all of them [M, values]); BN's running averages are put back."""
        buffers = self.running_means + self.running_vars
        saved = [buffer.clone() for buffer in buffers]
        captured: list[Tensor] = []
        self.forward(inputs, training, None, captured)
        if buffers:
            torch._foreach_copy_(buffers, saved)
        models = self.size
        views = []
        for values in captured:
            if values.dim() == 3:  # [M, P, F]
                views.append((values.transpose(1, 2), values.reshape(models, -1)))
            else:  # [P, M·C, H, W] → each model's [P, C, H, W]
                per_model = values.reshape(values.shape[0], models, -1, *values.shape[2:]).transpose(0, 1)
                by_unit = per_model.transpose(1, 2).reshape(models, per_model.shape[2], -1)
                views.append((by_unit, per_model.reshape(models, -1)))
        return views

    @property
    def hidden_weight_positions(self) -> list[int]:
        """Where each hidden layer's weight is in `parameters`."""
        return list(self._hidden_weights)

    def weight_gradient_norms(self, gradients: Sequence[Tensor]) -> list[Tensor]:
        """Each hidden weight layer's gradient norm per model, [M] per layer, from a step's `gradients`."""
        return [gradients[index].flatten(1).norm(dim=1) for index in self._hidden_weights]

    def draw_dropout_as(self, rows: Sequence[int], population: int) -> None:
        """Draw dropout masks for a stack of `population` models, model m taking row `rows[m]` of them."""
        self.dropout_population = population
        identity = list(rows) == list(range(population))
        self.dropout_rows = (
            None if identity else torch.tensor(list(rows), dtype=torch.long, device=self.device)
        )

    def keep(self, slots: Sequence[int]) -> None:
        index = torch.tensor(list(slots), dtype=torch.long, device=self.device)
        rows = torch.arange(self.size, device=self.device) if self.dropout_rows is None else self.dropout_rows
        self.dropout_rows = rows.index_select(0, index)
        with torch.no_grad():
            self.parameters = [p.detach().index_select(0, index).requires_grad_() for p in self.parameters]
        self.running_means = [buffer.index_select(0, index) for buffer in self.running_means]
        self.running_vars = [buffer.index_select(0, index) for buffer in self.running_vars]
        self.eps, self.momentum = self.eps.index_select(0, index), self.momentum.index_select(0, index)
        self.dropout_rates = self.dropout_rates.index_select(0, index)
        self._normalization = [self._normalization[slot] for slot in slots]
        self.noise_seeds = self.noise_seeds.index_select(0, index)
        self.noise_mean_stds = self.noise_mean_stds.index_select(0, index)
        self.noise_scale_stds = self.noise_scale_stds.index_select(0, index)

    def state_dict(self) -> dict[str, Any]:
        return {
            "parameters": [parameter.detach() for parameter in self.parameters],
            "running_means": self.running_means,
            "running_vars": self.running_vars,
            "noise_step": self.noise_step,
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.noise_step = int(state.get("noise_step", 0))  # absent from checkpoints of before noisy BN
        tensors = [p.detach() for p in self.parameters] + self.running_means + self.running_vars
        saved = state["parameters"] + state["running_means"] + state["running_vars"]
        if [tensor.shape for tensor in tensors] != [tensor.shape for tensor in saved]:
            raise ValueError("the saved stacks do not fit this group's models")
        torch._foreach_copy_(tensors, saved)


def _runs(settings: list[tuple[float, float]]) -> list[tuple[tuple[float, float], int]]:
    """Consecutive equal (eps, momentum) pairs with their counts."""
    runs: list[tuple[tuple[float, float], int]] = []
    for value in settings:
        if runs and runs[-1][0] == value:
            runs[-1] = (value, runs[-1][1] + 1)
        else:
            runs.append((value, 1))
    return runs


def _buffer(module: nn.Module, name: str) -> Tensor:
    buffer = getattr(module, name)
    if not isinstance(buffer, Tensor):
        raise TypeError(f"{type(module).__name__} keeps no {name}")
    return buffer
