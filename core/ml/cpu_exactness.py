"""What keeps a stacked model's numbers, on the CPU, those of the same model trained alone — to the bit.

ATen's CPU batch-norm backward on a [B, C] input treats its last few channels (C modulo the vector width)
one by one and rounds them differently from the others. One call over M models' [B, M·F] channels would
therefore compute some models' last channels unlike a call over one model's [B, F], unless F is a multiple
of the vector width. This module finds out, once per process and layout, whether one call rounds alike,
and where it does not, calls the kernel model by model — the one per-model loop of a training step. It is
used on the CPU only: on an accelerator stacked and lone runs agree to rounding, not to the bit (batched
and single matrix products may run different kernels there), and one call serves.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import Tensor


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
        torch.ops.aten.native_batch_norm_backward(
            model_gradient,
            model_inputs,
            model_scale,
            None,
            None,
            model_mean,
            model_inverse_std,
            True,
            model_eps,
            [True, True, True],
        )
        for model_gradient, model_inputs, model_scale, model_mean, model_inverse_std, model_eps in zip(
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


@functools.cache
def batch_norm_backward_rounds_alike(batch: int, width: int, models: int, dtype: torch.dtype) -> bool:
    """Whether ATen's CPU batch-norm backward over [batch, models·width] gives each block of `width`
    channels, to the bit, what a call over that block alone gives it.

    Checked once per process and layout, on random values: the answer is the kernel's loop structure (a
    differing channel tail shows on dozens of values), not the values, eps or statistics.
    """
    if models == 1:
        return True
    generator = torch.Generator(device="cpu").manual_seed(0)
    channels = models * width

    def random(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=generator, dtype=dtype)

    gradient, inputs, mean = random(batch, channels), random(batch, channels), random(channels)
    scale, inverse_std = random(channels).abs_().add_(0.5), random(channels).abs_().add_(0.5)

    def backward(block: slice) -> tuple[Tensor, Tensor, Tensor]:
        return torch.ops.aten.native_batch_norm_backward(
            gradient[:, block].contiguous(),
            inputs[:, block].contiguous(),
            scale[block],
            None,
            None,
            mean[block],
            inverse_std[block],
            True,
            1e-5,
            [True, True, True],
        )

    together = backward(slice(None))
    alone = [backward(slice(start, start + width)) for start in range(0, channels, width)]
    return all(
        torch.equal(joined, torch.cat(parts, dim=-1)) for joined, *parts in zip(together, *alone, strict=True)
    )
