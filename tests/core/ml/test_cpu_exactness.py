"""The CPU's batch-norm backward for a stack: one call per run of models, repaired to the lone calls."""

from __future__ import annotations

import platform

import pytest
import torch
from torch import Tensor

from core.ml.cpu_exactness import (
    NO_REPAIR,
    batch_norm_backward_by_model,
    repair_input_gradients,
    tail_repair,
)


@pytest.mark.parametrize(
    ("batch", "width", "models"),
    [(60, 100, 2), (60, 100, 3), (60, 100, 16), (7, 10, 3), (60, 50, 5), (16, 32, 4), (60, 100, 1)],
)
@pytest.mark.parametrize("threads", [1, 2])
def test_one_repaired_call_gives_every_model_its_lone_call_s_gradients(
    batch: int, width: int, models: int, threads: int
) -> None:
    """On values unlike those the once-per-layout check draws: other seed, BN-sized statistics, small
    gradients."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        repair = tail_repair(batch, width, models, torch.float32)
        if platform.machine().lower() in ("x86_64", "amd64"):  # AVX2 and AVX-512 kernels: a repair exists
            assert repair is not None
        if repair is None:
            return
        generator = torch.Generator().manual_seed(7)

        def random(*shape: int, scale: float = 1.0) -> Tensor:
            return torch.randn(*shape, generator=generator) * scale

        inputs = random(models, batch, width, scale=3.0) + 0.5
        gradient = random(models, batch, width, scale=1e-3)
        means = inputs.mean(dim=1)
        inverse_stds = inputs.var(dim=1, unbiased=False).add(1e-5).rsqrt()
        scale = random(models, width, scale=0.1) + 1.0
        expected = batch_norm_backward_by_model(gradient, inputs, scale, means, inverse_stds, [1e-5] * models)

        joined = torch.ops.aten.native_batch_norm_backward(
            gradient.transpose(0, 1).reshape(batch, -1),
            inputs.transpose(0, 1).reshape(batch, -1),
            scale.view(-1),
            None,
            None,
            means.view(-1),
            inverse_stds.view(-1),
            True,
            1e-5,
            [True, True, True],
        )
        input_gradient = joined[0].view(batch, models, width).transpose(0, 1).contiguous()
        scale_gradient, shift_gradient = joined[1].view(models, width), joined[2].view(models, width)
        repair_input_gradients(
            input_gradient,
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
        assert torch.equal(input_gradient, expected[0])
        assert torch.equal(scale_gradient, expected[1]) and torch.equal(shift_gradient, expected[2])
    finally:
        torch.set_num_threads(before)


def test_a_width_on_the_vector_width_needs_no_repair() -> None:
    assert tail_repair(60, 64, 8, torch.float32) == NO_REPAIR
    assert tail_repair(60, 100, 1, torch.float32) == NO_REPAIR
