"""The footprint formula of `core.group_sizes` against what autograd keeps: for each normalization kind
trained by autograd on the stack (`core.ml.stacked_net`), the values saved for the backward pass per example
and hidden unit, plus the two a step holds briefly (the layer's output and its gradient), fit within the
formula's k, and the kinds rank as the formula ranks them."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

from core.group_sizes import kept_and_parameters_per_unit
from core.ml.nets import build_model
from core.ml.stacked_net import StackedNet
from tests.core.ml.helpers import make_spec

WIDTH = 64
BRIEFLY_HELD = 2  # per unit and example: a layer's output before the next consumes it, its gradient
KINDS: dict[str, dict[str, Any]] = {
    "none": {"batch_norm": False},
    "paper batch": {"batch_norm": True, "bn_implementation": "bnlab"},
    "noisy batch": {"batch_norm": True, "bn_noise": {"mean_std": 0.5, "scale_std": 0.5}},
    "layer": {"batch_norm": False, "normalization": "layer"},
    "group": {"batch_norm": False, "normalization": "group", "groups": 8},
}


def saved_values_per_unit(changes: dict[str, Any]) -> float:
    """Values autograd saves per example and hidden unit in a training forward pass of a 2×64 MLP,
    from the growth between batches of 64 and 128 (so that the weights and per-unit statistics cancel)."""

    def saved(batch: int) -> int:
        spec = make_spec(architecture={"kind": "mlp", "hidden": [WIDTH, WIDTH]}, batch_size=batch, **changes)
        model = StackedNet([build_model(spec, (64,), 10)], [spec], torch.device("cpu"))
        storages: dict[int, int] = {}
        parameters = {parameter.untyped_storage().data_ptr() for parameter in model.parameters}

        def keep(tensor: torch.Tensor) -> torch.Tensor:
            storage = tensor.untyped_storage()
            if storage.data_ptr() not in parameters:
                storages[storage.data_ptr()] = storage.nbytes() // tensor.element_size()
            return tensor

        inputs = torch.randn(1, batch, 64)
        with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
            logits = model.forward(inputs, True, None, dropout=True)
            F.cross_entropy(logits.flatten(0, 1), torch.zeros(batch, dtype=torch.long))
        storages.pop(inputs.untyped_storage().data_ptr(), None)
        return sum(storages.values())

    return (saved(128) - saved(64)) / 64 / (2 * WIDTH)


@pytest.mark.parametrize("kind", KINDS)
def test_what_autograd_keeps_fits_the_formula(kind: str) -> None:
    kept, _ = kept_and_parameters_per_unit(make_spec(**KINDS[kind]))
    measured = saved_values_per_unit(KINDS[kind])
    assert measured + BRIEFLY_HELD <= kept + 0.25, (kind, measured, kept)  # 0.25: the logits' share


def test_the_kinds_rank_as_the_formula_ranks_them() -> None:
    measured = {kind: saved_values_per_unit(changes) for kind, changes in KINDS.items()}
    formula = {kind: kept_and_parameters_per_unit(make_spec(**changes))[0] for kind, changes in KINDS.items()}
    assert (
        measured["none"]
        < measured["noisy batch"]
        < measured["layer"]
        == pytest.approx(measured["group"], abs=0.25)
    )
    assert formula["none"] < formula["noisy batch"] < formula["layer"] == formula["group"]
