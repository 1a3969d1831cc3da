"""Which specs fuse into one group, and how a sweep's specs split into groups (torch-free)."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from core.fused_groups import can_fuse, fusion_key, split_into_fused_groups
from core.spec import JobSpec

REPOSITORY = Path(__file__).resolve().parents[2]
BASE: dict[str, Any] = {
    "architecture": {"kind": "mlp", "hidden": [100, 100, 100], "activation": "sigmoid"},
    "batch_norm": True,
    "learning_rate": 0.1,
    "dropout": 0.0,
}


def spec(**changes: Any) -> JobSpec:
    return JobSpec.model_validate({**BASE, **changes})


@pytest.mark.parametrize(
    "changes",
    [
        {"learning_rate": 1.0},
        {"dropout": 0.5},
        {"init": "gaussian", "init_std": 0.1},
        {"bn_momentum": 0.5, "bn_eps": 1e-3},
        {"seed": 7},
        {"target_accuracy": 0.9},
        {"name": "another"},
    ],
)
def test_what_only_changes_numbers_fuses(changes: dict[str, Any]) -> None:
    assert can_fuse(spec(), spec(**changes))


@pytest.mark.parametrize(
    "changes",
    [
        {"architecture": {"kind": "mlp", "hidden": [100, 100], "activation": "sigmoid"}},
        {"architecture": {"kind": "mlp", "hidden": [100, 100, 100], "activation": "relu"}},
        {"batch_norm": False},
        {"optimizer": "adam"},
        {"dataset": "spirals"},
        {"batch_size": 61},
        {"steps": 1000},
        {"eval_every": 10},
        {"telemetry_every": 100},
        {"landscape_every": 100},
        {"checkpoint_every": 100},
        {"device": "cpu"},
    ],
)
def test_what_shapes_tensors_or_the_schedule_does_not(changes: dict[str, Any]) -> None:
    assert not can_fuse(spec(), spec(**changes))
    assert fusion_key(spec()) != fusion_key(spec(**changes))


CNN = {"architecture": {"kind": "cnn", "channels": [8], "activation": "relu"}}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (CNN, {**CNN, "learning_rate": 1.0, "seed": 3, "dropout": 0.2}),
        ({**CNN, "bn_implementation": "bnlab"}, {**CNN, "bn_implementation": "bnlab", "bn_momentum": 0.5}),
        ({"bn_implementation": "bnlab"}, {"bn_implementation": "bnlab", "init": "he"}),
    ],
    ids=["cnn", "cnn-paper-bn", "mlp-paper-bn"],
)
def test_cnns_and_paper_bn_fuse_with_their_like(first: dict[str, Any], second: dict[str, Any]) -> None:
    assert can_fuse(spec(**first), spec(**second))


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (CNN, {}),  # a CNN and an MLP
        (CNN, {**CNN, "architecture": {"kind": "cnn", "channels": [8, 8], "activation": "relu"}}),
        (CNN, {**CNN, "architecture": {"kind": "cnn", "channels": [16], "activation": "relu"}}),
        (CNN, {**CNN, "architecture": {"kind": "cnn", "channels": [8], "activation": "tanh"}}),
        (CNN, {**CNN, "batch_norm": False}),
        ({}, {"bn_implementation": "bnlab"}),
        (CNN, {**CNN, "bn_implementation": "bnlab"}),
    ],
    ids=["mlp-and-cnn", "depth", "channels", "activation", "bn-off", "mlp-bn-impl", "cnn-bn-impl"],
)
def test_what_shapes_a_stack_keeps_cnns_and_bn_implementations_apart(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    assert not can_fuse(spec(**first), spec(**second))


def test_the_bn_implementation_does_not_matter_without_bn() -> None:
    assert can_fuse(spec(batch_norm=False), spec(batch_norm=False, bn_implementation="bnlab"))


def test_groups_keep_the_order_in_which_they_first_appear() -> None:
    specs = [spec(), spec(batch_norm=False), spec(learning_rate=1.0), spec(batch_norm=False, seed=1)]
    assert split_into_fused_groups(specs, max_group_size=16) == [[0, 2], [1, 3]]


def test_cnns_and_each_bn_implementation_make_groups_of_their_own() -> None:
    specs = [spec(**CNN), spec(), spec(**CNN, seed=1), spec(bn_implementation="bnlab"), spec(seed=1)]
    assert split_into_fused_groups(specs, max_group_size=16) == [[0, 2], [1, 4], [3]]


@pytest.mark.parametrize(
    ("size", "max_group_size", "sizes"),
    [(20, 16, [10, 10]), (16, 16, [16]), (17, 8, [6, 6, 5]), (3, 1, [1, 1, 1])],
)
def test_a_large_group_is_cut_into_even_parts(size: int, max_group_size: int, sizes: list[int]) -> None:
    groups = split_into_fused_groups([spec(seed=seed) for seed in range(size)], max_group_size)
    assert [len(group) for group in groups] == sizes
    assert [index for group in groups for index in group] == list(range(size))


def test_gpu_groups_are_cut_at_their_own_size() -> None:
    cpu = [spec(seed=seed, device="cpu") for seed in range(40)]
    gpu = [spec(seed=seed, device="cuda") for seed in range(40)]
    groups = split_into_fused_groups(cpu + gpu, max_group_size=16, max_gpu_group_size=256)
    assert [len(group) for group in groups] == [14, 13, 13, 40]
    assert groups[-1] == list(range(40, 80))
    # Without a GPU size every group is cut at max_group_size.
    assert [len(group) for group in split_into_fused_groups(gpu, max_group_size=16)] == [14, 13, 13]


def test_a_group_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        split_into_fused_groups([spec()], max_group_size=0)


def test_grouping_does_not_import_torch() -> None:
    code = "import sys, core.fused_groups; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPOSITORY, check=False).returncode == 0


def test_each_normalization_kind_fuses_only_with_its_own() -> None:
    kinds = [
        spec(normalization=kind, batch_norm=kind == "batch") for kind in ("none", "batch", "layer", "group")
    ]
    kinds.append(spec(normalization="group", batch_norm=False, groups=4))
    assert all(can_fuse(kind, kind.model_copy(update={"seed": 3})) for kind in kinds)
    assert not any(can_fuse(first, second) for first, second in itertools.combinations(kinds, 2))


def test_the_telemetry_mode_matters_only_with_telemetry() -> None:
    assert can_fuse(spec(), spec(telemetry_mode="train"))
    assert not can_fuse(spec(telemetry_every=100), spec(telemetry_every=100, telemetry_mode="train"))


def test_noisy_bn_fuses_with_noisy_bn_of_any_strength_only() -> None:
    noisy = spec(bn_noise={"mean_std": 0.5, "scale_std": 0.5})
    assert can_fuse(noisy, spec(bn_noise={"mean_std": 2.0, "scale_std": 0.0}, seed=4))
    assert not can_fuse(noisy, spec())
