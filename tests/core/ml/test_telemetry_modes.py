"""Inference-mode telemetry (the paper's Fig. 1): a fixed held-out probe, BN by its population statistics."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import Tensor

from core.ml import run
from core.ml.stacks import MLPStack, NetStack
from core.ml.telemetry import PERCENTILES, PROBE_SIZE
from core.ml.trainer import StackTrainer
from core.results import Callbacks, TelemetryRecord
from core.settings import Settings
from tests.core.ml.helpers import make_spec

TELEMETRY = {"telemetry_every": 20, "steps": 40, "eval_every": 20}


def _trained(models: int, **changes: Any) -> StackTrainer:
    specs = [make_spec(**{**TELEMETRY, "seed": seed, **changes}) for seed in range(models)]
    trainer = StackTrainer(specs, [Callbacks() for _ in specs], torch.device("cpu"), Settings())
    trainer.train(20)  # the running statistics move away from their initial (0, 1)
    return trainer


def _nearest_rank(values: Tensor) -> list[float]:
    ordered = values.flatten().sort().values
    return [ordered[max(1, math.ceil(q * len(ordered))) - 1].item() for q in PERCENTILES]


def _by_hand(trainer: StackTrainer, row: int, probe: Tensor) -> list[list[float]]:
    """Each hidden layer's (unit 0 p15/p50/p85, all units p15/p50/p85, mean) for one model, written out
    from its parameters with BN as at inference: (z − running mean) / √(running var + eps) · γ + β."""
    model = trainer.stack.model
    parameters = [parameter.detach()[row] for parameter in model.parameters]
    eps = trainer.rows[row].spec.bn_eps
    hidden, figures = probe, []
    for layer in range(2):
        weight, scale, shift = parameters[3 * layer : 3 * layer + 3]
        mean, variance = model.running_means[layer][row], model.running_vars[layer][row]
        pre_activation = (hidden @ weight.T - mean) / torch.sqrt(variance + eps) * scale + shift
        figures.append(
            [
                *_nearest_rank(pre_activation[:, 0]),
                *_nearest_rank(pre_activation),
                pre_activation.mean().item(),
            ]
        )
        hidden = torch.sigmoid(pre_activation)
    return figures


def _figures(record: TelemetryRecord) -> list[float]:
    return [
        record.unit_p15,
        record.unit_p50,
        record.unit_p85,
        record.p15,
        record.p50,
        record.p85,
        record.mean,
    ]


@pytest.mark.parametrize("bn_implementation", ["torch", "bnlab"])
def test_inference_telemetry_uses_population_statistics_and_differs_from_the_train_mode_probe(
    bn_implementation: str,
) -> None:
    trainer = _trained(3, bn_implementation=bn_implementation)
    assert isinstance(trainer.stack, MLPStack if bn_implementation == "torch" else NetStack)
    probe = trainer._probe_inputs()
    assert probe.shape[:2] == (3, PROBE_SIZE)
    inference = trainer.stack.telemetry(probe, 20, training=False)
    as_in_training = trainer.stack.telemetry(probe, 20, training=True)
    for row in range(3):
        expected = _by_hand(trainer, row, probe[row])
        for record, figures in zip(inference[row], expected, strict=True):
            assert _figures(record) == pytest.approx(figures, rel=1e-5, abs=1e-5)
        # In train mode a BN layer's output has batch mean β: not so with the population statistics.
        train_means = [record.mean for record in as_in_training[row]]
        assert train_means != pytest.approx([record.mean for record in inference[row]], abs=1e-3)


def test_the_inference_probe_is_the_same_held_out_set_whatever_the_seeds() -> None:
    first = _trained(1, seed=0).data.probe_x
    other = StackTrainer(
        [make_spec(**TELEMETRY, seed=5), make_spec(**TELEMETRY, seed=9, split_seed=3)],
        [Callbacks(), Callbacks()],
        torch.device("cpu"),
        Settings(),
    )
    assert first is not None and other.data.probe_x is not None
    assert torch.equal(first, other.data.probe_x)
    assert torch.equal(first, _trained(1, seed=0, split_seed=0).data.val_x[:PROBE_SIZE])  # held out


def test_a_run_reports_inference_telemetry_by_default_and_train_mode_on_request() -> None:
    recorded: dict[str, list[TelemetryRecord]] = {"inference": [], "train": []}
    for mode, records in recorded.items():
        run(
            make_spec(**TELEMETRY, telemetry_mode=mode),
            Callbacks(on_telemetry=records.extend),
            settings=Settings(),
        )
    assert make_spec().telemetry_mode == "inference"
    assert [r.layer for r in recorded["inference"]] == [r.layer for r in recorded["train"]] == [0, 1, 0, 1]
    # Train mode normalizes the probe by its own statistics: each layer's mean is β's mean, ~0 early on.
    assert all(abs(record.mean) < 0.2 for record in recorded["train"])
    assert any(
        abs(a.mean - b.mean) > 1e-3 for a, b in zip(recorded["inference"], recorded["train"], strict=True)
    )
