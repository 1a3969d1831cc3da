"""Batch norm of M stacked MLPs (`core.ml.fused_model.StackedMLP`): one native batch_norm call per run of
models with equal eps and momentum, forwards and backwards, to the bit of a separate run's on the CPU.

With BN a layer's pre-activations are copied into the layout [B, M·F] — channel m·F + f is unit f of model m —
so that ONE native batch-norm call normalizes every unit of every model over that model's own batch and
updates per-model running statistics (buffers [M·F]); eval mode uses them, as a separate run's `BatchNorm1d`
does. Batch norm takes one eps and one momentum: the trainer orders models by (eps, momentum) and this module
makes one call per run of equal values (one call when they agree, the usual case).

To the bit. On the CPU batch norm's backward takes channels in vector-sized blocks and the last few one by
one, and rounds those few otherwise in one call over M models than in a separate run's call (a layer 100
wide — the paper's — has such a tail; see `core.ml.fused_model`). Where one call of BN's backward pass rounds
some models' last channels differently on the CPU at hand, those channels are recomputed as the lone call
rounds them, in a few batched operations (`core.ml.cpu_exactness`; checked once per process and layout; on an
accelerator, where fused runs agree with separate ones to rounding only, the call serves as it is).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from core.ml.cpu_exactness import (
    NO_REPAIR,
    TailRepair,
    batch_norm_backward_by_model,
    repair_input_gradients,
    stack_repair,
)
from core.ml.stacked_mlp_parts import LayerTape, StackedLayer, joined_runs, present


@dataclass(frozen=True)
class _NormalizationRun:
    """Consecutive models [first, last) sharing BN's eps and momentum: one batch_norm call."""

    first: int
    last: int
    eps: float
    momentum: float


class StackedBatchNorm:
    """The BN layers of a stack's models: their runs of equal (eps, momentum), their batched passes, and the
    CPU repairs of the backward pass, asked once per layout. Built anew whenever the set of models changes;
    it holds the stacked model's own lists of parameters and running statistics."""

    def __init__(
        self,
        parameters: list[Tensor],
        running_means: list[Tensor],
        running_vars: list[Tensor],
        normalization: Sequence[tuple[float, float]],
        device: torch.device,
    ) -> None:
        self.parameters = parameters
        self.running_means = running_means
        self.running_vars = running_vars
        self._normalization = normalization
        self.device = device
        self._runs: list[_NormalizationRun] = []
        self._repairs: dict[tuple[int, int, int], TailRepair | None] = {}  # by (batch, width, threads)
        for slot, (eps, momentum) in enumerate(self._normalization):
            if self._runs and (self._runs[-1].eps, self._runs[-1].momentum) == (eps, momentum):
                self._runs[-1] = _NormalizationRun(self._runs[-1].first, slot + 1, eps, momentum)
            else:
                self._runs.append(_NormalizationRun(slot, slot + 1, eps, momentum))

    @property
    def size(self) -> int:
        """M, the number of models stacked."""
        return self.parameters[0].shape[0]

    def normalize(
        self, pre_activation: Tensor, layer: StackedLayer, training: bool, tape: LayerTape
    ) -> Tensor:
        """BN of pre-activations [M, B, F]: one batch_norm call per run of models.

        A run's pre-activations are copied into the [B, M·F] layout for the call (contiguous, as a separate
        run's are: batch_norm reduces a strided input in another order, which would round differently), and
        come back as a [M, B, F] view.
        """
        batch, width = pre_activation.shape[1], layer.width
        scale, shift, means, variances = self._normalization_vectors(layer)
        outputs = []
        for run in self._runs:
            models, channels = run.last - run.first, slice(run.first * width, run.last * width)
            normalized_inputs = (
                pre_activation[run.first : run.last].transpose(0, 1).reshape(batch, models * width)
            )
            normalized, saved_mean, saved_inverse_std = torch.ops.aten.native_batch_norm(
                normalized_inputs,
                scale[channels],
                shift[channels],
                means[channels],
                variances[channels],
                training,
                run.momentum,
                run.eps,
            )
            tape.run_inputs.append(normalized_inputs)
            tape.saved_means.append(saved_mean)
            tape.saved_inverse_stds.append(saved_inverse_std)
            outputs.append(normalized.view(batch, models, width).transpose(0, 1))
        tape.normalized_inputs = pre_activation
        return joined_runs(outputs)

    def normalization_backward(
        self, gradient: Tensor, layer: StackedLayer, tape: LayerTape, gradients: list[Tensor | None]
    ) -> Tensor:
        """The gradient [M, B, F] of a BN layer's pre-activations from that of its output [M, B, F]; fills
        in γ's and β's gradients.

        One call per run of models over [B, m·F]; on the CPU it rounds some models' last channels unlike
        their lone [B, F] calls (F off the vector width), and `core.ml.cpu_exactness` repairs them in a few
        batched operations, or else each model gets a call on its contiguous [B, F] slices. The forward
        pass has no such tail: one call rounds as M calls do.
        """
        inputs = tape.normalized_inputs
        assert layer.bn_weight is not None and layer.bn_bias is not None and inputs is not None
        key = (gradient.shape[1], layer.width, torch.get_num_threads())
        if key not in self._repairs:  # asked once per stack and layout: a step only looks it up
            runs = [run.last - run.first for run in self._runs]
            self._repairs[key] = stack_repair(*key[:2], runs, self.parameters[0].dtype, self.device)
        repair = self._repairs[key]
        if repair == NO_REPAIR:
            return self._normalization_backward_by_run(gradient, layer, tape, gradients)
        per_model = (  # γ and the batch statistics, [M, F]
            self._normalization_vectors(layer)[0].view(self.size, layer.width),
            joined_runs(tape.saved_means).view(self.size, layer.width),
            joined_runs(tape.saved_inverse_stds).view(self.size, layer.width),
        )
        if repair is None:
            eps = [eps for eps, _ in self._normalization]
            by_model = batch_norm_backward_by_model(gradient, inputs, *per_model, eps)
            input_gradient, gradients[layer.bn_weight], gradients[layer.bn_bias] = by_model
            return input_gradient
        input_gradient = self._normalization_backward_by_run(gradient, layer, tape, gradients)
        repair_input_gradients(
            input_gradient,
            gradient.contiguous(),
            inputs,
            *per_model,
            present(gradients[layer.bn_weight]),
            present(gradients[layer.bn_bias]),
            [(run.first, run.last, run.eps) for run in self._runs],
            repair,
        )
        return input_gradient

    def _normalization_backward_by_run(
        self, gradient: Tensor, layer: StackedLayer, tape: LayerTape, gradients: list[Tensor | None]
    ) -> Tensor:
        """One batch-norm backward call per run of models, each on the [B, m·F] layout of the forward call."""
        assert layer.bn_weight is not None and layer.bn_bias is not None
        batch, width = gradient.shape[1], layer.width
        scale, _, means, variances = self._normalization_vectors(layer)
        input_gradients, scale_gradients, shift_gradients = [], [], []
        for index, run in enumerate(self._runs):
            models, channels = run.last - run.first, slice(run.first * width, run.last * width)
            output_gradient = gradient[run.first : run.last].transpose(0, 1).reshape(batch, models * width)
            input_gradient, scale_gradient, shift_gradient = torch.ops.aten.native_batch_norm_backward(
                output_gradient,
                tape.run_inputs[index],
                scale[channels],
                means[channels],
                variances[channels],
                tape.saved_means[index],
                tape.saved_inverse_stds[index],
                True,
                run.eps,
                [True, True, True],
            )
            input_gradients.append(input_gradient.view(batch, models, width).transpose(0, 1))
            scale_gradients.append(scale_gradient)
            shift_gradients.append(shift_gradient)
        gradients[layer.bn_weight] = joined_runs(scale_gradients).view(self.size, width)
        gradients[layer.bn_bias] = joined_runs(shift_gradients).view(self.size, width)
        # One copy into [M, B, F] costs less than what a strided gradient costs both products that use it.
        return joined_runs(input_gradients).contiguous()

    def _normalization_vectors(self, layer: StackedLayer) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """γ, β and the running mean and variance of a BN layer, as [M·F] vectors."""
        assert layer.bn_weight is not None and layer.bn_bias is not None and layer.norm is not None
        return (
            self.parameters[layer.bn_weight].view(-1),
            self.parameters[layer.bn_bias].view(-1),
            self.running_means[layer.norm].view(-1),
            self.running_vars[layer.norm].view(-1),
        )
