"""The landscape study's report: ratios over seeds with their intervals, and a verdict only where the
interval excludes 1 (the study itself needs a running service and minutes of training)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example_module(name: str) -> ModuleType:
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    return importlib.import_module(name)


measures = example_module("landscape_measures")
report = example_module("landscape_report")


def pairs_with(activation: str, learning_rate: float, ratios: list[float]) -> list[Any]:
    job = measures.Job(
        "j", "succeeded", {"architecture": {"activation": activation}, "learning_rate": learning_rate}, {}, {}
    )
    return [
        measures.Pair(
            seed,
            job,
            job,
            {
                quantity: {"geometric_mean_ratio": ratio, "smoother_fraction": 0.5}
                for quantity in measures.QUANTITIES
            },
        )
        for seed, ratio in enumerate(ratios)
    ]


def test_a_ratio_below_one_on_every_seed_is_bold_and_a_verdict() -> None:
    ratio = measures.ratio_over_seeds(pairs_with("sigmoid", 0.1, [0.5, 0.55, 0.45, 0.6, 0.5]), "loss_range")
    assert ratio.geometric == pytest.approx(0.5175, abs=1e-4) and ratio.seeds == 5
    assert ratio.ci95 is not None and ratio.ci95[1] < 1
    assert report.ratio_cell(ratio) == "**0.518** [0.452, 0.593] (50%–50%)"
    assert ratio.verdict() == "BN smoother"


def test_ratios_on_both_sides_of_one_get_no_verdict_and_the_claim_is_not_settled() -> None:
    pairs = {
        measures.Setting("relu", 0.1): pairs_with("relu", 0.1, [0.7, 1.3, 0.9]),
        measures.Setting("relu", 0.5): pairs_with("relu", 0.5, [0.5, 0.6, 0.55]),
    }
    noisy = measures.ratio_over_seeds(pairs[measures.Setting("relu", 0.1)], "loss_range")
    assert not report.ratio_cell(noisy).startswith("**")
    assert noisy.verdict() == "no detectable difference at n = 3"
    [loss_range, *_] = report.verdicts(pairs)
    assert loss_range.startswith("- relu, loss range: BN smoother at 1 and rougher at 0 of 2 learning rates")
    assert "lr 0.1: " in loss_range and "no detectable difference at n = 3" in loss_range
    assert loss_range.endswith("the claim is not settled at these seeds")
