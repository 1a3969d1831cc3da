"""What keeps a stacked model's numbers, on the CPU, those of the same model trained alone — to the bit.

ATen's CPU batch-norm backward on a [B, C] input works through the channels in vector-sized blocks and
finishes the last few (C modulo the vector width) as one partial vector. Its sums (β's gradient, and γ's)
come out the same either way, but the input gradient does not: the compiler fuses a multiply and a subtract
of the full blocks into one rounding (an FMA) and leaves the partial block's two roundings apart. A lone
model's call over its [B, F] channels has a partial block of F modulo the width; one call over M models'
[B, M·F] channels has it elsewhere, and would round those channels of every model but the last otherwise.

So where one call does not round alike (a layer 100 wide, say), the stack makes one call per run of models
anyway and then repairs what differs, in a few batched operations whatever M is (`repair_input_gradients`):
- each model's last channels, which its lone call finishes as a partial vector, are recomputed from the
  call's own γ and β gradients with the partial block's separate roundings, in the kernel's order:
  k = (γ' · σ⁻¹) / B, dx = (((dy − β' / B) − (x − μ) · k) · σ⁻¹) · γ;
- where the call's own partial block reaches into channels that the run's last model computes as full
  vectors alone, that model gets a call of its own (at most one per run).
`tail_repair` works out, once per process and layout, which tail width does this on the CPU at hand (the
vector width is the kernel's, not Python's to ask), verifying the whole procedure against per-model calls
on random values; where none does, `batch_norm_backward_by_model` calls the kernel model by model — the
one per-model loop of a training step. All of it is used on the CPU only: on an accelerator stacked and
lone runs agree to rounding, not to the bit (batched and single matrix products may run different kernels
there), and one call serves.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

VECTOR_WIDTHS = (16, 8, 32, 64, 4)  # elements per vector block to try: AVX-512 and AVX2 floats first
# The repair's dozen small operations cost about what 4 per-model calls do (one 100-wide layer, batch 60:
# 2 models 37 µs by model against 81 µs repaired, 4: 71 against 94, 8: 137 against 130, 16: 290 against
# 217): below this many models in a stack, a call per model is the cheaper way to the same numbers.
REPAIR_FROM_MODELS = 8


@dataclass(frozen=True)
class TailRepair:
    """How to turn one batch-norm backward call per run of models into their lone calls' input gradients."""

    tail: int  # the last channels of each model's block that its lone call finishes as a partial vector
    last_alone: bool  # whether each run's last model needs a call of its own


NO_REPAIR = TailRepair(0, last_alone=False)


def stack_repair(
    batch: int, width: int, runs: Sequence[int], dtype: torch.dtype, device: torch.device
) -> TailRepair | None:
    """The repair of one call per run of models (`runs`: their sizes) for the layer at hand; None: each
    model gets a call of its own (no repair works here, or the stack is too small for one to pay). Nothing
    to repair off the CPU."""
    if device.type != "cpu":
        return NO_REPAIR
    repairs = {tail_repair(batch, width, models, dtype) for models in runs}
    if None in repairs:
        return None
    # A run that needs no repair takes another's unharmed: its lone-partial channels are recomputed as
    # its lone calls compute them, and a lone call of its last model is that model's own.
    needed = {repair for repair in repairs if repair is not None and repair != NO_REPAIR}
    if needed and sum(runs) < REPAIR_FROM_MODELS:
        return None
    if len({repair.tail for repair in needed}) > 1:
        return None
    if len(needed) > 1:
        return TailRepair(needed.pop().tail, last_alone=True)
    return needed.pop() if needed else NO_REPAIR


def batch_norm_backward_by_model(
    gradient: Tensor,
    inputs: Tensor,
    scale: Tensor,
    saved_means: Tensor,
    saved_inverse_stds: Tensor,
    eps: Sequence[float],
) -> tuple[Tensor, Tensor, Tensor]:
    """BN's backward pass model by model, each on its contiguous [B, F] slices as a lone run makes it.

    gradient and inputs [M, B, F]; scale, saved_means and saved_inverse_stds [M, F]; one eps per model.
    Returns the input gradient [M, B, F] and γ's and β's gradients [M, F].
    """
    # `unbind` slices all models in one call (indexing each would cost a call per model and tensor);
    # training mode's backward pass reads no running statistics.
    per_model = [
        _lone_call(*arguments)
        for arguments in zip(
            gradient.contiguous().unbind(),
            inputs.unbind(),
            scale.unbind(),
            saved_means.unbind(),
            saved_inverse_stds.unbind(),
            eps,
            strict=True,
        )
    ]
    input_gradients, scale_gradients, shift_gradients = zip(*per_model, strict=True)
    return torch.stack(input_gradients), torch.stack(scale_gradients), torch.stack(shift_gradients)


def repair_input_gradients(
    input_gradient: Tensor,
    gradient: Tensor,
    inputs: Tensor,
    scale: Tensor,
    saved_means: Tensor,
    saved_inverse_stds: Tensor,
    scale_gradient: Tensor,
    shift_gradient: Tensor,
    runs: Sequence[tuple[int, int, float]],
    repair: TailRepair,
) -> None:
    """Make `input_gradient` [M, B, F] (from one call per run of models) every model's lone call's, in place.

    gradient and inputs [M, B, F] (model-major, contiguous); scale, saved_means, saved_inverse_stds and the
    calls' γ and β gradients [M, F]; `runs` are (first, last, eps) of each call's models.
    """
    batch, tail = inputs.shape[1], repair.tail
    if tail:
        last = slice(inputs.shape[2] - tail, None)
        inverse_std = saved_inverse_stds[:, last]
        factor = (scale_gradient[:, last] * inverse_std).div_(batch).unsqueeze(1)
        centred_scaled = (inputs[:, :, last] - saved_means[:, last].unsqueeze(1)).mul_(factor)
        repaired = input_gradient[:, :, last]  # a view: written in place
        torch.sub(gradient[:, :, last], shift_gradient[:, last].div(batch).unsqueeze(1), out=repaired)
        repaired.sub_(centred_scaled).mul_(inverse_std.unsqueeze(1)).mul_(scale[:, last].unsqueeze(1))
    if repair.last_alone:
        for _, last_model, eps in runs:
            model = last_model - 1
            input_gradient[model] = _lone_call(
                gradient[model],
                inputs[model],
                scale[model],
                saved_means[model],
                saved_inverse_stds[model],
                eps,
            )[0]


def _lone_call(
    gradient: Tensor, inputs: Tensor, scale: Tensor, mean: Tensor, inverse_std: Tensor, eps: float
) -> tuple[Tensor, Tensor, Tensor]:
    """The kernel as a lone model's step calls it: its contiguous [B, F] slices."""
    return torch.ops.aten.native_batch_norm_backward(
        gradient, inputs, scale, None, None, mean, inverse_std, True, eps, [True, True, True]
    )


@functools.cache
def _tail_repair(batch: int, width: int, models: int, dtype: torch.dtype, threads: int) -> TailRepair | None:
    if models == 1:
        return NO_REPAIR
    generator = torch.Generator(device="cpu").manual_seed(0)

    def random(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=generator, dtype=dtype)

    gradient, inputs = random(models, batch, width), random(models, batch, width)
    means = random(models, width)
    scale = random(models, width).abs_().add_(0.5)
    inverse_stds = random(models, width).abs_().add_(0.5)
    expected = batch_norm_backward_by_model(gradient, inputs, scale, means, inverse_stds, [1e-5] * models)

    def joined(values: Tensor) -> Tensor:
        return values.transpose(0, 1).reshape(batch, models * width)

    together = torch.ops.aten.native_batch_norm_backward(
        joined(gradient),
        joined(inputs),
        scale.view(-1),
        None,
        None,
        means.view(-1),
        inverse_stds.view(-1),
        True,
        1e-5,
        [True, True, True],
    )
    input_gradient = together[0].view(batch, models, width).transpose(0, 1).contiguous()
    scale_gradient, shift_gradient = together[1].view(models, width), together[2].view(models, width)
    if not (torch.equal(scale_gradient, expected[1]) and torch.equal(shift_gradient, expected[2])):
        return None
    if torch.equal(input_gradient, expected[0]):
        return NO_REPAIR
    passing = []
    for vector in VECTOR_WIDTHS:
        # The call's own partial block (its last channels) reaches past the last model's own one.
        repair = TailRepair(width % vector, last_alone=(models * width) % vector > width % vector)
        if repair.tail == 0 and not repair.last_alone:
            continue
        candidate = input_gradient.clone()
        repair_input_gradients(
            candidate,
            gradient,
            inputs,
            scale,
            means,
            inverse_stds,
            scale_gradient,
            shift_gradient,
            [(0, models, 1e-5)],
            repair,
        )
        if torch.equal(candidate, expected[0]):
            passing.append(repair)
    if passing:  # the cheapest that works: without a lone call if one does
        return min(passing, key=lambda repair: (repair.last_alone, repair.tail))
    return None


def tail_repair(batch: int, width: int, models: int, dtype: torch.dtype) -> TailRepair | None:
    """How one batch-norm backward call over [batch, models·width] is made every block of `width` channels'
    lone call, to the bit, on this CPU: TailRepair(0, False) when it already is, None when no repair found
    here does it (then each model needs its own call).

    Checked once per process, layout and thread count, on random values: the answer is the kernel's loop
    structure (a differing channel tail shows on dozens of values), not the values or the statistics.
    """
    return _tail_repair(batch, width, models, dtype, torch.get_num_threads())
