"""The nets: every architecture × activation × BN combination builds, runs and exposes its hidden layers."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from core.ml.batchnorm import PaperBatchNorm1d, PaperBatchNorm2d
from core.ml.nets import NONLINEARITIES, build_model
from tests.core.ml.helpers import make_spec

IMAGE_SHAPE = (1, 8, 8)  # digits
ARCHITECTURES = {
    "mlp": {"kind": "mlp", "hidden": [12, 7, 5]},
    "cnn": {"kind": "cnn", "channels": [4, 6]},
}
COMBINATIONS = list(
    itertools.product(ARCHITECTURES, ["sigmoid", "tanh", "relu"], [False, True], ["torch", "bnlab"])
)


@pytest.mark.parametrize(("kind", "activation", "batch_norm", "implementation"), COMBINATIONS)
def test_every_combination_builds_and_exposes_one_input_per_hidden_nonlinearity(
    kind: str, activation: str, batch_norm: bool, implementation: str
) -> None:
    spec = make_spec(
        architecture={**ARCHITECTURES[kind], "activation": activation},
        batch_norm=batch_norm,
        bn_implementation=implementation,
        dropout=0.25,
    )
    model = build_model(spec, IMAGE_SHAPE, num_classes=10)
    inputs = torch.randn(9, *IMAGE_SHAPE)
    assert model(inputs).shape == (9, 10)

    pre_activations = model.nonlinearity_inputs(inputs)
    if kind == "mlp":
        assert [tuple(values.shape) for values in pre_activations] == [(9, 12), (9, 7), (9, 5)]
    else:  # 3x3 convolutions keep 8x8, each 2x2 pool halves it
        assert [tuple(values.shape) for values in pre_activations] == [(9, 4, 8, 8), (9, 6, 4, 4)]
    assert len(model.hidden_weight_layers) == len(pre_activations)

    # The paper's order in every hidden block: weight layer → BN → nonlinearity → dropout (→ pool).
    weight_type, bn_type = (
        (nn.Linear, {"torch": nn.BatchNorm1d, "bnlab": PaperBatchNorm1d}[implementation])
        if kind == "mlp"
        else (nn.Conv2d, {"torch": nn.BatchNorm2d, "bnlab": PaperBatchNorm2d}[implementation])
    )
    block = [weight_type, *([bn_type] if batch_norm else []), NONLINEARITIES[activation], nn.Dropout]
    if kind == "mlp":
        expected = [nn.Flatten, *block * 3, nn.Linear]
    else:
        expected = [*[*block, nn.MaxPool2d] * 2, nn.Flatten, nn.Linear]
    assert [type(layer) for layer in model.layers] == expected
    # The layer feeding a BN has no bias (BN's β replaces it).
    assert all((layer.bias is None) == batch_norm for layer in model.hidden_weight_layers)


def test_state_dict_holds_each_tensor_once() -> None:
    model = build_model(make_spec(), IMAGE_SHAPE, 10)
    tensors = list(model.state_dict().values())
    assert len({tensor.data_ptr() for tensor in tensors}) == len(tensors)


def test_chosen_batch_norm_implementation_is_used() -> None:
    for implementation, expected in [("torch", nn.BatchNorm1d), ("bnlab", PaperBatchNorm1d)]:
        model = build_model(make_spec(bn_implementation=implementation), IMAGE_SHAPE, 10)
        batch_norms = [layer for layer in model.layers if isinstance(layer, expected)]
        assert len(batch_norms) == 2


def test_parameters_depend_only_on_the_seed() -> None:
    spec = make_spec(seed=3)
    first = build_model(spec, IMAGE_SHAPE, 10).state_dict()
    torch.rand(1000)  # whatever ran before the build must not matter
    second = build_model(spec, IMAGE_SHAPE, 10).state_dict()
    other_seed = build_model(make_spec(seed=4), IMAGE_SHAPE, 10).state_dict()
    for name, tensor in first.items():
        assert torch.equal(tensor, second[name])
    assert not torch.equal(first["layers.1.weight"], other_seed["layers.1.weight"])


@pytest.mark.parametrize(
    ("init", "activation"), [("he", "relu"), ("xavier", "tanh"), ("gaussian", "sigmoid")]
)
def test_initializations_give_their_documented_spread(init: str, activation: str) -> None:
    width_in, width_out = 400, 300
    spec = make_spec(
        architecture={"kind": "mlp", "hidden": [width_out], "activation": activation},
        init=init,
        init_std=0.05,
        batch_norm=False,
    )
    model = build_model(spec, (width_in,), 10)
    hidden = model.hidden_weight_layers[0]
    expected_std = {
        "he": (2.0 / width_in) ** 0.5,  # Kaiming: gain √2 for relu over fan-in
        "xavier": (5 / 3) * (2.0 / (width_in + width_out)) ** 0.5,  # Glorot with tanh's gain 5/3
        "gaussian": 0.05,
    }[init]
    assert float(hidden.weight.detach().std()) == pytest.approx(expected_std, rel=0.05)
    assert hidden.bias is not None and float(hidden.bias.detach().abs().max()) == 0.0


def test_default_init_keeps_torch_initialization() -> None:
    spec = make_spec(architecture={"kind": "mlp", "hidden": [300]}, batch_norm=False)
    model = build_model(spec, (400,), 10)
    bound = 1 / 400**0.5  # torch's Linear: U(-1/√fan_in, 1/√fan_in)
    weight = model.hidden_weight_layers[0].weight
    assert float(weight.detach().abs().max()) <= bound
    assert float(weight.detach().std()) == pytest.approx(bound / 3**0.5, rel=0.05)


@pytest.mark.parametrize("implementation", ["torch", "bnlab"])
def test_probe_uses_batch_statistics_and_leaves_the_model_as_it_was(implementation: str) -> None:
    spec = make_spec(dropout=0.5, bn_implementation=implementation)
    model = build_model(spec, IMAGE_SHAPE, 10)
    model.eval()
    inputs = torch.randn(64, *IMAGE_SHAPE) * 4 + 2
    state_before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    rng_before = torch.get_rng_state()

    first_layer_input = model.nonlinearity_inputs(inputs)[0]

    # Batch statistics: each unit's input is normalized over the probe batch (γ = 1, β = 0 at the start).
    torch.testing.assert_close(first_layer_input.mean(dim=0), torch.zeros(32), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        first_layer_input.std(dim=0, unbiased=False), torch.ones(32), atol=1e-3, rtol=0
    )
    assert not model.training
    assert torch.equal(torch.get_rng_state(), rng_before)  # dropout was off: no random numbers drawn
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, state_before[name]), name
