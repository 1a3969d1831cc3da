"""Santurkar et al.'s gradient-based ICS: ‖G − G′‖₂ and cos(G, G′), against a two-pass computation by hand."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from core.ml import run
from core.ml.nets import build_model
from core.ml.trainer import StackTrainer
from core.results import Callbacks, TelemetryRecord
from core.settings import Settings
from tests.core.ml.helpers import make_spec

TINY: dict[str, Any] = {"architecture": {"kind": "mlp", "hidden": [6, 5, 4], "activation": "sigmoid"}}
KINDS = {
    "torch BN": {"batch_norm": True},
    "paper BN": {"batch_norm": True, "bn_implementation": "bnlab"},
    "no BN": {"batch_norm": False},
    "layer norm": {"batch_norm": False, "normalization": "layer"},
}


def _by_hand(
    trainer: StackTrainer, row: int, inputs: torch.Tensor, labels: torch.Tensor
) -> list[tuple[float, float]]:
    """Two passes per layer on a plain torch net holding the model's parameters."""
    spec = trainer.rows[row].spec
    net = build_model(spec, trainer.data.input_shape, trainer.data.num_classes)
    with torch.no_grad():
        for parameter, stacked in zip(net.parameters(), trainer.stack.model.parameters, strict=True):
            parameter.copy_(stacked[row])
    parameters = list(net.parameters())
    positions = [
        next(i for i, p in enumerate(parameters) if p is layer.weight) for layer in net.hidden_weight_layers
    ]

    def gradients(model: torch.nn.Module) -> tuple[torch.Tensor, ...]:
        return torch.autograd.grad(F.cross_entropy(model(inputs), labels), list(model.parameters()))

    before = gradients(net)
    figures = []
    for position in positions:
        shifted = copy.deepcopy(net)
        with torch.no_grad():
            for parameter, gradient in list(zip(shifted.parameters(), before, strict=True))[:position]:
                parameter -= spec.learning_rate * gradient
        after = gradients(shifted)
        change = (before[position] - after[position]).norm().item()
        cosine = F.cosine_similarity(before[position].flatten(), after[position].flatten(), dim=0).item()
        figures.append((change, cosine))
    return figures


@pytest.mark.parametrize("kind", KINDS)
def test_the_measure_is_the_two_pass_computation_for_every_model_of_a_stack(kind: str) -> None:
    specs = [make_spec(**TINY, **KINDS[kind], seed=seed, learning_rate=0.5 * (seed + 1)) for seed in range(3)]
    trainer = StackTrainer(specs, [Callbacks() for _ in specs], torch.device("cpu"), Settings())
    trainer.train(5)
    inputs, labels = trainer._landscape_batch()
    before = [tensor.clone() for tensor in trainer.stack.state_tensors()]
    measured = trainer.stack.ics(inputs, labels)
    assert all(torch.equal(old, new) for old, new in zip(before, trainer.stack.state_tensors(), strict=True))
    for row in range(3):
        expected = _by_hand(trainer, row, inputs[row], labels[row])
        assert measured[row][0] == (0.0, 1.0)  # nothing precedes the first layer
        for (change, cosine), (hand_change, hand_cosine) in zip(measured[row], expected, strict=True):
            assert change == pytest.approx(hand_change, rel=1e-3, abs=1e-7)
            assert cosine == pytest.approx(hand_cosine, abs=1e-5)
        assert all(change > 0 for change, _ in measured[row][1:])  # the preceding layers did move


def test_telemetry_records_carry_the_measure() -> None:
    records: list[TelemetryRecord] = []
    run(
        make_spec(**TINY, telemetry_every=10, steps=20),
        Callbacks(on_telemetry=records.extend),
        settings=Settings(),
    )
    assert [record.layer for record in records] == [0, 1, 2] * 2
    assert all(
        record.ics_gradient_change is not None and record.ics_gradient_cosine is not None
        for record in records
    )
    assert all(record.ics_gradient_change == 0.0 for record in records if record.layer == 0)
    assert all(0 < (record.ics_gradient_cosine or 0) <= 1 for record in records)
