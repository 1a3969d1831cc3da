"""Layer and group norm: torch's LayerNorm and GroupNorm before each nonlinearity, alone and stacked."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.ml import run
from core.ml.nets import build_model
from core.ml.stacked_net import StackedNet
from core.ml.trainer import StackTrainer, train_stack
from core.results import Callbacks
from core.settings import Settings
from tests.core.ml.helpers import make_spec

IMAGE_SHAPE = (1, 8, 8)
MLP = {"kind": "mlp", "hidden": [12, 8], "activation": "tanh"}
CNN = {"kind": "cnn", "channels": [4, 6], "activation": "relu"}
CASES = [
    ("mlp", "layer", None, nn.LayerNorm),
    ("mlp", "group", 4, nn.GroupNorm),
    ("mlp", "group", None, nn.GroupNorm),
    ("cnn", "layer", None, nn.GroupNorm),  # a conv layer's layer norm: one group of all channels
    ("cnn", "group", 2, nn.GroupNorm),
]


def _spec(kind: str, normalization: str, groups: int | None, **changes: Any) -> Any:
    return make_spec(
        architecture=MLP if kind == "mlp" else CNN,
        batch_norm=False,
        normalization=normalization,
        groups=groups,
        bn_eps=1e-3,
        **changes,
    )


@pytest.mark.parametrize(("kind", "normalization", "groups", "module_type"), CASES)
@pytest.mark.parametrize("models", [1, 3], ids=["alone", "stacked"])
def test_each_kind_computes_what_torch_s_module_computes_alone_and_stacked(
    kind: str, normalization: str, groups: int | None, module_type: type[nn.Module], models: int
) -> None:
    specs = [
        _spec(kind, normalization, groups, seed=seed, init="gaussian", init_std=0.3) for seed in range(models)
    ]
    nets = [build_model(spec, IMAGE_SHAPE, 10) for spec in specs]
    norms = [module for module in nets[0].layers if isinstance(module, nn.LayerNorm | nn.GroupNorm)]
    assert [type(module) for module in norms] == [module_type, module_type]  # before each nonlinearity
    if normalization == "layer" and kind == "cnn":
        assert all(isinstance(module, nn.GroupNorm) and module.num_groups == 1 for module in norms)
    if normalization == "group":
        widths = MLP["hidden"] if kind == "mlp" else CNN["channels"]
        expected = [groups or max(g for g in range(1, 33) if width % g == 0) for width in widths]
        assert [module.num_groups for module in norms] == expected
    with torch.no_grad():  # scales and shifts away from 1 and 0, so that they are tested too
        for net in nets:
            for module in norms if net is nets[0] else net.layers:
                if isinstance(module, nn.LayerNorm | nn.GroupNorm):
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.uniform_(-0.5, 0.5)
    stacked = StackedNet(nets, specs, torch.device("cpu"))
    inputs = torch.randn(models, 5, *IMAGE_SHAPE)
    logits = stacked.forward(inputs, True, None)
    gradients = torch.autograd.grad(logits.square().sum(), stacked.parameters)
    for row, net in enumerate(nets):
        expected_logits = net(inputs[row])
        expected_gradients = torch.autograd.grad(expected_logits.square().sum(), list(net.parameters()))
        torch.testing.assert_close(logits[row], expected_logits, rtol=1e-5, atol=1e-5)
        for gradient, expected in zip(gradients, expected_gradients, strict=True):
            torch.testing.assert_close(gradient[row], expected, rtol=1e-3, atol=1e-4)


def test_layer_norm_of_an_mlp_is_torch_s_layer_norm_by_hand() -> None:
    net = build_model(_spec("mlp", "layer", None), IMAGE_SHAPE, 10)
    layer_norm = net.layers[2]
    assert isinstance(layer_norm, nn.LayerNorm) and layer_norm.eps == 1e-3
    values = torch.randn(7, 12)
    by_hand = (values - values.mean(1, keepdim=True)) / torch.sqrt(
        values.var(1, unbiased=False, keepdim=True) + 1e-3
    )
    torch.testing.assert_close(layer_norm(values), by_hand)
    torch.testing.assert_close(layer_norm(values), F.layer_norm(values, (12,), eps=1e-3))


@pytest.mark.parametrize(
    ("kind", "normalization", "groups"), [(c[0], c[1], c[2]) for c in CASES[:2] + CASES[3:]]
)
def test_a_model_trains_the_same_alone_and_fused(kind: str, normalization: str, groups: int | None) -> None:
    common = {"steps": 30, "eval_every": 10, "telemetry_every": 10, "learning_rate": 0.2}
    specs = [_spec(kind, normalization, groups, seed=seed, **common) for seed in range(3)]
    fused = train_stack(specs, [Callbacks() for _ in specs], settings=Settings())  # CNNs too
    for spec, together in zip(specs, fused, strict=True):
        alone = run(spec, Callbacks(), settings=Settings())
        assert alone.outcome == together.outcome == "succeeded"
        assert together.summary.final_val_loss == pytest.approx(alone.summary.final_val_loss, rel=1e-4)
    assert fused[0].summary.final_val_accuracy > 0.2  # it learns (chance: 0.1)


def test_layer_and_group_norm_train_through_the_autograd_stack_and_batch_norm_through_the_written_one() -> (
    None
):
    def stack_kind(**changes: Any) -> str:
        trainer = StackTrainer([make_spec(**changes)], [Callbacks()], torch.device("cpu"), Settings())
        return type(trainer.stack).__name__

    assert stack_kind(batch_norm=False, normalization="layer") == "NetStack"
    assert stack_kind(batch_norm=False, normalization="group") == "NetStack"
    assert stack_kind(normalization="batch") == "MLPStack"
    assert stack_kind(batch_norm=False) == "MLPStack"
