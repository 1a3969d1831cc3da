"""M MLPs of one architecture as stacked tensors: one batched kernel per layer trains all of them.

Parameters. Each parameter of the architecture is one tensor [M, ...] holding it for every model: a
layer's weight [M, out, in] (nn.Linear's layout), its bias, BN γ and BN β [M, F]. The optimizer updates
them in place.

Activations. A batch is [M, B, features]: row m holds model m's own examples. With BN every unit of every
model is normalized over that model's own batch, with per-model running statistics, by one native
batch-norm call per run of models with equal eps and momentum (`core.ml.stacked_batch_norm`).

A training step runs without autograd: `loss_and_gradients` is the forward pass and the backward pass
written out with the kernels autograd calls for a separate run's net — bmm for `F.linear`'s products,
native_batch_norm and its backward, the nonlinearity's backward, nll_loss and log_softmax backward — fed
the same values in the same memory layouts, and the step skips the autograd engine's own overhead at each
of some fifty graph nodes, which is much of a small net's step. Linear layers compute `x @ Wᵀ` forwards
and `g @ W` and `gᵀ @ x` backwards, as `F.linear`'s backward does (autograd's bmm backward would compute
`xᵀ @ g` for the weight, which rounds differently for some shapes).

To the bit. ATen's CPU loops take elements (or BN's channels) in vector-sized blocks and the last few one
by one, and some kernels round those few differently (the vector sigmoid against the scalar one; batch
norm's backward over its last channels). A layer 100 wide — the paper's — is not a multiple of the vector
width, so a kernel called once over M models would put other values in that tail than a separate run's
call does. Two measures keep each model's numbers those of its separate run: the nonlinearity runs over a
row per model (`_activate`), and where one call of BN's backward pass rounds some models' last channels
differently on the CPU at hand, those channels are recomputed as the lone call rounds them
(`core.ml.stacked_batch_norm`). This matters beyond neatness: Adam divides by the root of tiny second
moments and turns a one-ulp difference into 1e-4 in val loss within a few hundred steps. Only train_loss
differs, by ~1e-7: each model's per-step mean is summed in another order.

Dropout has a per-model rate; its masks come from the group's own generator, not from torch's global
one, so they differ from a separate run's masks: with dropout, fused and separate runs agree in
distribution, not value by value.

Telemetry and loss-landscape probes run on the stack too (`nonlinearity_inputs`, `loss_and_gradients`
without dropout), for every model at once.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from core.ml.nets import Net
from core.ml.stacked_batch_norm import StackedBatchNorm
from core.ml.stacked_mlp_parts import (
    LayerTape,
    cross_entropy_and_gradient,
    module_buffer,
    parameter_places,
    present,
    stacked_linear,
    weight_layers,
)
from core.spec import JobSpec

# In place: neither a linear layer nor batch_norm needs its output for the backward pass, so the
# nonlinearity may overwrite it rather than fill a fresh tensor (the same values, less memory traffic).
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "sigmoid": torch.sigmoid_,
    "tanh": torch.tanh_,
    "relu": torch.relu_,
}
# Each nonlinearity's backward from its output, as autograd computes it.
ACTIVATION_BACKWARDS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "sigmoid": torch.ops.aten.sigmoid_backward,
    "tanh": torch.ops.aten.tanh_backward,
    "relu": lambda gradient, output: torch.ops.aten.threshold_backward(gradient, output, 0),
}
ROW_ALIGNMENT = 16  # floats: 64 bytes, a cache line and an AVX-512 vector


class StackedMLP:
    """The parameters, BN buffers and per-model settings of M models, and their batched passes."""

    def __init__(self, nets: Sequence[Net], specs: Sequence[JobSpec], device: torch.device) -> None:
        if not nets or len(nets) != len(specs):
            raise ValueError("a stacked model needs one spec per net, and at least one net")
        self.device = device
        self.activation = ACTIVATIONS[nets[0].activation]
        self.activation_backward = ACTIVATION_BACKWARDS[nets[0].activation]
        self.weight_layers = weight_layers(nets[0], parameter_places(nets[0]))
        per_net = [[getattr(module, name).detach() for module, name in parameter_places(net)] for net in nets]
        self.parameters = [torch.stack(parameters).to(device) for parameters in zip(*per_net, strict=True)]
        norms = [[module for module in net.layers if isinstance(module, nn.BatchNorm1d)] for net in nets]
        self.running_means = [
            torch.stack([module_buffer(layers[index], "running_mean") for layers in norms]).to(device)
            for index in range(len(norms[0]))
        ]
        self.running_vars = [
            torch.stack([module_buffer(layers[index], "running_var") for layers in norms]).to(device)
            for index in range(len(norms[0]))
        ]
        self._dropout_rates = [spec.dropout for spec in specs]
        # Dropout draws for the stack as first built and each model keeps its row of the draw, so that its
        # masks do not depend on when others leave the stacks (see `draw_dropout_as`).
        self.dropout_population = len(nets)
        self.dropout_rows: Tensor | None = None
        self._normalization = [(spec.bn_eps, spec.bn_momentum) for spec in specs]
        self._refresh()

    @property
    def size(self) -> int:
        """M, the number of models stacked."""
        return self.parameters[0].shape[0]

    @torch.no_grad()
    def forward(self, inputs: Tensor) -> Tensor:
        """Logits [M, B, classes] of every model on its own inputs [M, B, features], in eval mode: BN uses
        the running statistics and there is no dropout."""
        logits, _ = self._forward(inputs, training=False, generator=None, tapes=None)
        return logits

    @torch.no_grad()
    def loss_and_gradients(
        self, inputs: Tensor, labels: Tensor, generator: torch.Generator | None, dropout: bool = True
    ) -> tuple[Tensor, Tensor, list[Tensor]]:
        """One training step's forward and backward pass on inputs [M, B, features] and labels [M·B].

        BN normalizes with batch statistics and updates the running ones; dropout masks come from
        `generator` (no dropout without `dropout`: a probe's pass). Returns each model's mean cross-entropy
        loss [M], the logits [M, B, classes] and the gradient of the sum of the models' losses with respect
        to each of `parameters` (so each model's gradient is that of its own mean loss).
        """
        tapes: list[LayerTape] = []
        logits, head_inputs = self._forward(inputs, True, generator, tapes, dropout=dropout)
        losses, logits_gradient = cross_entropy_and_gradient(logits, labels)
        return losses, logits, self._backward(logits_gradient, head_inputs, tapes)

    @torch.no_grad()
    def nonlinearity_inputs(self, inputs: Tensor, training: bool = True) -> list[Tensor]:
        """Each hidden nonlinearity's input [M, B, F] on inputs [M, B, features], without dropout: as training
        sees it (BN with the batch's own statistics), or with `training` off as inference sees it (BN with
        its running statistics). BN's running averages are put back afterwards, so a probe leaves the
        models as it found them (as `Net.nonlinearity_inputs` does for one net)."""
        buffers = self.running_means + self.running_vars
        saved = [buffer.clone() for buffer in buffers]
        captured: list[Tensor] = []
        self._forward(inputs, training, None, None, dropout=False, captured=captured)
        if buffers:
            torch._foreach_copy_(buffers, saved)
        return captured

    @property
    def hidden_weight_positions(self) -> list[int]:
        """Where each hidden layer's weight is in `parameters`."""
        return [layer.weight for layer in self.weight_layers[:-1]]

    def weight_gradient_norms(self, gradients: Sequence[Tensor]) -> list[Tensor]:
        """Each hidden weight layer's gradient norm per model, [M] per layer, from a step's `gradients`."""
        return [gradients[layer.weight].flatten(1).norm(dim=1) for layer in self.weight_layers[:-1]]

    def keep(self, slots: Sequence[int]) -> None:
        """Keep only the models at `slots` (in that order): the others leave the stacks for good."""
        index = torch.tensor(slots, dtype=torch.long, device=self.device)
        rows = torch.arange(self.size, device=self.device) if self.dropout_rows is None else self.dropout_rows
        self.dropout_rows = rows.index_select(0, index)
        self.parameters = [parameter.index_select(0, index) for parameter in self.parameters]
        self.running_means = [buffer.index_select(0, index) for buffer in self.running_means]
        self.running_vars = [buffer.index_select(0, index) for buffer in self.running_vars]
        self._dropout_rates = [self._dropout_rates[slot] for slot in slots]
        self._normalization = [self._normalization[slot] for slot in slots]
        self._refresh()

    def draw_dropout_as(self, rows: Sequence[int], population: int) -> None:
        """Draw dropout masks for a stack of `population` models, model m taking row `rows[m]` of them."""
        self.dropout_population = population
        identity = list(rows) == list(range(population))
        self.dropout_rows = (
            None if identity else torch.tensor(list(rows), dtype=torch.long, device=self.device)
        )

    def models_between(self, first: int, last: int) -> StackedMLP:
        """Models [first, last) as a stacked model of their own, its stacks views of this one's: for
        evaluating a large group a few models at a time (training always steps the whole stack)."""
        part = copy.copy(self)
        part.parameters = [parameter[first:last] for parameter in self.parameters]
        part.running_means = [buffer[first:last] for buffer in self.running_means]
        part.running_vars = [buffer[first:last] for buffer in self.running_vars]
        part._dropout_rates = self._dropout_rates[first:last]
        part._normalization = self._normalization[first:last]
        part._refresh()
        return part

    def state_dict(self) -> dict[str, Any]:
        return {
            "parameters": self.parameters,
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

    def _refresh(self) -> None:
        """Derive the per-model settings' tensors and BN runs after the set of models changed."""
        rates = torch.tensor(self._dropout_rates, dtype=self.parameters[0].dtype, device=self.device)
        self._any_dropout = any(rate > 0 for rate in self._dropout_rates)
        self._dropout_rates_tensor = rates
        self._dropout_scales = 1 / (1 - rates)
        self._batch_norm = StackedBatchNorm(
            self.parameters, self.running_means, self.running_vars, self._normalization, self.device
        )

    def _forward(
        self,
        inputs: Tensor,
        training: bool,
        generator: torch.Generator | None,
        tapes: list[LayerTape] | None,
        dropout: bool = True,
        captured: list[Tensor] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Logits [M, B, classes] and the head's inputs; appends each hidden layer's tape to `tapes`, and
        with `captured` each nonlinearity's input to it. Dropout only in training and with `dropout`."""
        hidden = inputs
        for layer in self.weight_layers[:-1]:
            tape = LayerTape(inputs=hidden)
            pre_activation = stacked_linear(hidden, self.parameters[layer.weight], self._bias(layer.bias))
            if layer.norm is not None:
                pre_activation = self._batch_norm.normalize(pre_activation, layer, training, tape)
            if captured is not None:
                captured.append(pre_activation)
            hidden = tape.activated = self._activate(pre_activation)
            if training and self._any_dropout and dropout:
                tape.dropout_scale = self._dropout_scale(hidden.shape, generator)
                hidden = hidden * tape.dropout_scale
            if tapes is not None:
                tapes.append(tape)
        head = self.weight_layers[-1]
        return stacked_linear(hidden, self.parameters[head.weight], self._bias(head.bias)), hidden

    def _backward(self, logits_gradient: Tensor, head_inputs: Tensor, tapes: list[LayerTape]) -> list[Tensor]:
        """The gradient of every parameter, in the order of `parameters`, from that of the logits."""
        gradients: list[Tensor | None] = [None] * len(self.parameters)
        head = self.weight_layers[-1]
        assert head.bias is not None  # the head is a plain linear layer
        gradients[head.bias] = logits_gradient.sum(dim=1)
        gradients[head.weight] = torch.bmm(logits_gradient.transpose(1, 2), head_inputs)
        gradient = torch.bmm(logits_gradient, self.parameters[head.weight])
        for index in reversed(range(len(tapes))):
            layer, tape = self.weight_layers[index], tapes[index]
            if tape.dropout_scale is not None:
                gradient = gradient * tape.dropout_scale
            assert tape.activated is not None
            pre_activation_gradient = self.activation_backward(gradient, tape.activated)
            if layer.norm is None:
                assert layer.bias is not None
                gradients[layer.bias] = pre_activation_gradient.sum(dim=1)
            else:
                pre_activation_gradient = self._batch_norm.normalization_backward(
                    pre_activation_gradient, layer, tape, gradients
                )
            gradients[layer.weight] = torch.bmm(pre_activation_gradient.transpose(1, 2), tape.inputs)
            if index > 0:  # the first layer's input is data
                gradient = torch.bmm(pre_activation_gradient, self.parameters[layer.weight])
        return [present(gradient) for gradient in gradients]

    def _bias(self, position: int | None) -> Tensor | None:
        return None if position is None else self.parameters[position]

    def _activate(self, values: Tensor) -> Tensor:
        """The nonlinearity of `values` [M, B, F], computed model by model as a separate run computes it.

        A separate run applies it to one contiguous [B, F] tensor: ATen's CPU loop takes the elements in
        vector-sized blocks and the last few (B·F modulo the block) one by one, and its vector sigmoid
        rounds some values differently (by one ulp) from its scalar one. A [M, B, F] tensor laid end to
        end would be one long loop, with other elements in the scalar tail. So each model's values go into
        a row of their own, the rows a little longer than B·F: the rows cannot merge into one loop, and
        every model's loop has its separate run's length and tail. Returns the [M, B, F] view of the rows.
        """
        models, batch, width = values.shape
        size = batch * width
        row_length = (size // ROW_ALIGNMENT + 1) * ROW_ALIGNMENT  # longer than `size`, rows aligned
        rows = torch.empty(models, row_length, dtype=values.dtype, device=values.device)[:, :size]
        activated = rows.view(models, batch, width)
        activated.copy_(values)
        self.activation(rows)  # in place: one loop per row
        return activated

    def _dropout_scale(self, shape: torch.Size, generator: torch.Generator | None) -> Tensor:
        """Inverted dropout: 0 with each model's rate, else 1 / (1 - rate), as torch's dropout scales."""
        population = (self.dropout_population, *shape[1:])
        uniform = torch.rand(
            population, generator=generator, device=self.device, dtype=self.parameters[0].dtype
        )
        if self.dropout_rows is not None:
            uniform = uniform.index_select(0, self.dropout_rows)
        kept = uniform >= self._dropout_rates_tensor.view(-1, 1, 1)
        return torch.where(kept, self._dropout_scales.view(-1, 1, 1), 0.0)
