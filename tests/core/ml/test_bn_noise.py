"""Noisy BN: the documented draws (m ~ N(0, mean_std²), log s ~ N(0, scale_std²)), from the seed alone."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from core.ml import run
from core.ml.bn_noise import shifts_and_scales, standard_normals
from core.ml.nets import build_model
from core.ml.stacked_net import StackedNet
from core.ml.trainer import StackTrainer, train_stack
from core.results import Callbacks
from core.settings import Settings
from tests.core.ml.helpers import make_spec

UNITS = 40_000


def test_the_noise_has_the_documented_moments() -> None:
    mean_stds, scale_stds = torch.tensor([0.5, 2.0]), torch.tensor([0.3, 0.1])
    shifts, scales = shifts_and_scales(
        torch.tensor([0, 5]), mean_stds, scale_stds, 3, 1, UNITS, torch.float64
    )
    tolerance = 4 / UNITS**0.5  # four standard errors of a mean of standard normals
    log_scales = scales.log()
    for row in range(2):
        assert abs(shifts[row].mean().item()) < tolerance * mean_stds[row].item()
        assert shifts[row].std().item() == pytest.approx(mean_stds[row].item(), rel=0.02)
        assert abs(log_scales[row].mean().item()) < tolerance * scale_stds[row].item()
        assert log_scales[row].std().item() == pytest.approx(scale_stds[row].item(), rel=0.02)
        correlation = torch.corrcoef(torch.stack([shifts[row], log_scales[row]]))[0, 1].item()
        assert abs(correlation) < tolerance
    # Over steps too: one unit's draws at 4,000 steps are standard normals, and steps are uncorrelated.
    over_steps = torch.stack(
        [standard_normals(torch.tensor([9]), step, 0, 1)[0][0, 0] for step in range(4000)]
    )
    assert abs(over_steps.mean().item()) < 4 / 4000**0.5
    assert over_steps.std().item() == pytest.approx(1.0, rel=0.05)
    assert abs(torch.corrcoef(torch.stack([over_steps[:-1], over_steps[1:]]))[0, 1].item()) < 4 / 4000**0.5


def test_the_draws_depend_on_seed_step_and_layer_alone() -> None:
    alone = standard_normals(torch.tensor([5]), 11, 2, 64)
    in_a_stack = standard_normals(torch.tensor([3, 5, 7]), 11, 2, 64)
    assert all(torch.equal(one[0], stacked[1]) for one, stacked in zip(alone, in_a_stack, strict=True))
    assert torch.equal(alone[0], standard_normals(torch.tensor([5]), 11, 2, 64)[0])  # again: the same
    for other in [([6], 11, 2), ([5], 12, 2), ([5], 11, 1)]:
        assert not torch.equal(alone[0], standard_normals(torch.tensor(other[0]), other[1], other[2], 64)[0])
    shifts, scales = shifts_and_scales(
        torch.tensor([5]), torch.zeros(1), torch.zeros(1), 11, 2, 64, torch.float32
    )
    assert torch.equal(shifts, torch.zeros(1, 64)) and torch.equal(
        scales, torch.ones(1, 64)
    )  # 0, 0: no noise


def test_a_training_step_adds_the_noise_after_each_bn_layer() -> None:
    spec = make_spec(
        architecture={"kind": "mlp", "hidden": [6], "activation": "sigmoid"},
        bn_noise={"mean_std": 0.7, "scale_std": 0.4},
        seed=4,
    )
    net = build_model(spec, (3,), 2)
    stacked = StackedNet([net], [spec], torch.device("cpu"))
    stacked.noise_step = 7
    inputs = torch.randn(1, 10, 3)
    logits = stacked.forward(inputs, True, None)[0]
    weight, scale, shift, head_weight, head_bias = (parameter.detach()[0] for parameter in stacked.parameters)
    pre_activation = inputs[0] @ weight.T
    mean, variance = pre_activation.mean(0), pre_activation.var(0, unbiased=False)
    normalized = (pre_activation - mean) / torch.sqrt(variance + spec.bn_eps) * scale + shift
    shifts, scales = shifts_and_scales(
        torch.tensor([4]), torch.tensor([0.7]), torch.tensor([0.4]), 7, 0, 6, torch.float32
    )
    by_hand = torch.sigmoid(normalized * scales[0] + shifts[0]) @ head_weight.T + head_bias
    torch.testing.assert_close(logits, by_hand)
    assert not torch.allclose(stacked.forward(inputs, False, None)[0], logits, atol=1e-3)  # evaluation: none


NOISY: dict[str, Any] = {"bn_noise": {"mean_std": 0.5, "scale_std": 0.5}, "steps": 40, "eval_every": 20}


def test_a_noisy_run_is_reproducible_from_its_seed_and_the_same_alone_or_stacked() -> None:
    specs = [  # each model its own noise: the stds are per-row numbers of the stack
        make_spec(**{**NOISY, "bn_noise": {"mean_std": 0.3 * (seed + 1), "scale_std": 0.2}}, seed=seed)
        for seed in range(3)
    ]
    stacked = train_stack(specs, [Callbacks() for _ in specs], settings=Settings())
    for spec, together in zip(specs, stacked, strict=True):
        alone = run(spec, Callbacks(), settings=Settings())
        assert together.summary.final_val_loss == pytest.approx(alone.summary.final_val_loss, rel=1e-5)
    again = run(specs[0], Callbacks(), settings=Settings())
    first = run(specs[0], Callbacks(), settings=Settings())
    assert again.summary.final_val_loss == first.summary.final_val_loss
    quiet = run(make_spec(**{**NOISY, "bn_noise": None}), Callbacks(), settings=Settings())
    assert quiet.summary.final_val_loss != first.summary.final_val_loss  # the noise changes the run


def test_noisy_bn_trains_through_the_autograd_stack_and_counts_its_steps() -> None:
    trainer = StackTrainer([make_spec(**NOISY)], [Callbacks()], torch.device("cpu"), Settings())
    assert type(trainer.stack).__name__ == "NetStack"
    trainer.train(5)
    assert trainer.stack.state_dict()["model"]["noise_step"] == 5


def test_a_noisy_run_resumed_from_a_checkpoint_draws_what_it_would_have_drawn() -> None:
    spec = make_spec(**{**NOISY, "checkpoint_every": 20})
    blobs: list[bytes] = []
    [whole] = train_stack(
        [spec], [Callbacks()], settings=Settings(), on_group_checkpoint=lambda _step, blob: blobs.append(blob)
    )
    [resumed] = train_stack([spec], [Callbacks()], checkpoint=blobs[0], settings=Settings())
    assert resumed.summary.final_val_loss == whole.summary.final_val_loss


def test_train_mode_telemetry_sees_the_noise_and_inference_mode_does_not() -> None:
    """The nonlinearity's input as training sees it (train mode) is s·y + m of the coming step's draw; the
    inference-mode probe, with BN's population statistics, has no noise (as evaluation)."""
    spec = make_spec(
        architecture={"kind": "mlp", "hidden": [6], "activation": "sigmoid"},
        bn_noise={"mean_std": 0.7, "scale_std": 0.4},
        seed=4,
    )
    stacked = StackedNet([build_model(spec, (3,), 2)], [spec], torch.device("cpu"))
    stacked.noise_step = 9
    inputs = torch.randn(1, 10, 3)
    (by_unit, _), *_ = stacked.nonlinearity_inputs(inputs, training=True)
    weight, scale, shift = (parameter.detach()[0] for parameter in stacked.parameters[:3])
    pre_activation = inputs[0] @ weight.T
    mean, variance = pre_activation.mean(0), pre_activation.var(0, unbiased=False)
    normalized = (pre_activation - mean) / torch.sqrt(variance + spec.bn_eps) * scale + shift
    shifts, scales = shifts_and_scales(
        torch.tensor([4]), torch.tensor([0.7]), torch.tensor([0.4]), 9, 0, 6, torch.float32
    )
    torch.testing.assert_close(by_unit[0], (normalized * scales[0] + shifts[0]).T)
    (inference, _), *_ = stacked.nonlinearity_inputs(inputs, training=False)
    running = (pre_activation - stacked.running_means[0][0]) / torch.sqrt(
        stacked.running_vars[0][0] + spec.bn_eps
    )
    torch.testing.assert_close(inference[0], (running * scale + shift).T)
