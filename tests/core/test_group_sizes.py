"""Group sizes for the device that will train them: the footprint formula, what fits a GPU's memory, and
which limit a group gets from the live workers (torch-free)."""

from __future__ import annotations

from typing import Any

from core.fused_groups import split_into_fused_groups
from core.group_sizes import (
    GPU_MEMORY_RESERVED_MB,
    GPU_MEMORY_USABLE_FRACTION,
    GroupSizing,
    group_sizing,
    model_footprint_bytes,
    models_fitting,
)
from core.settings import Settings
from core.spec import JobSpec

H200 = {"kind": "cuda", "name": "NVIDIA H200", "count": 1, "memory_mb": 143771, "threads": 1}
SMALL_GPU = {**H200, "name": "a small card", "memory_mb": 8000}
CPU = {"kind": "cpu", "name": "AMD EPYC", "count": 2, "memory_mb": 8000, "threads": 1}


def spec(**changes: Any) -> JobSpec:
    fields = {"architecture": {"kind": "mlp", "hidden": [10, 20]}, "batch_norm": True, "learning_rate": 0.1}
    return JobSpec.model_validate({**fields, "dropout": 0.0, "batch_size": 4, **changes})


def test_the_footprint_follows_the_documented_formula() -> None:
    # digits: 64 inputs, 10 classes. Weights 64·10 + 10·20 + 20·10; BN's γ, β per hidden unit; output bias.
    parameters = 64 * 10 + 10 * 20 + 20 * 10 + 2 * (10 + 20) + 10
    activations = 4 * (64 + 4 * (10 + 20) + 2 * 10)
    assert model_footprint_bytes(spec()) == 4 * 2 * (parameters * 2 + activations)
    assert model_footprint_bytes(spec(optimizer="adam")) == 4 * 2 * (parameters * 4 + activations)
    plain = 64 * 10 + 10 * 20 + 20 * 10 + (10 + 20) + 10
    assert model_footprint_bytes(spec(batch_norm=False)) == 4 * 2 * (plain * 2 + 4 * (64 + 3 * 30 + 20))
    paper = activations + 4 * 2 * (10 + 20)  # bnlab's paper BN keeps 6 values per unit, not 4
    assert model_footprint_bytes(spec(bn_implementation="bnlab")) == 4 * 2 * (parameters * 2 + paper)


def test_the_footprint_of_a_cnn_follows_the_documented_formula() -> None:
    # digits: 1×8×8 images. Blocks of 4 channels on 8×8 and 8 channels on 4×4, then a head from 8×2×2.
    cnn = {"architecture": {"kind": "cnn", "channels": [4, 8]}}
    parameters = (9 * 1 * 4 + 2 * 4) + (9 * 4 * 8 + 2 * 8) + 8 * 2 * 2 * 10 + 10
    activations = 4 * (64 + 4 * 8 * 8 * 4.25 + 8 * 4 * 4 * 4.25 + 2 * 10)
    assert model_footprint_bytes(spec(**cnn)) == int(4 * 2 * (parameters * 2 + activations))
    big = model_footprint_bytes(spec(**cnn, dataset="mnist", batch_size=512))
    assert (
        big is not None
        and models_fitting(spec(**cnn, dataset="mnist", batch_size=512), 8000)
        == int((8000 * GPU_MEMORY_USABLE_FRACTION - GPU_MEMORY_RESERVED_MB) * 2**20) // big
    )


def test_models_that_fit_a_gpu_leave_its_reserve_free() -> None:
    big = spec(architecture={"kind": "mlp", "hidden": [2048, 2048, 2048]}, optimizer="adam", batch_size=512)
    footprint = model_footprint_bytes(big)
    assert footprint is not None
    fitting = models_fitting(big, SMALL_GPU["memory_mb"])
    usable = (SMALL_GPU["memory_mb"] * GPU_MEMORY_USABLE_FRACTION - GPU_MEMORY_RESERVED_MB) * 2**20
    assert fitting is not None and fitting * footprint <= usable < (fitting + 1) * footprint
    assert models_fitting(big, 100) == 1  # never less than one model: it then fails or trains alone


def test_the_live_workers_decide_which_groups_are_gpu_sized() -> None:
    settings = Settings(_env_file=None, max_fused_group_size=4, max_fused_gpu_group_size=32)  # type: ignore[call-arg]
    nobody = group_sizing(settings, [])
    assert (nobody.limit_for(spec()), nobody.limit_for(spec(device="cuda"))) == (4, 32)

    gpu_queue_only = group_sizing(settings, [(["cpu", "default"], CPU), (["gpu"], H200)])
    assert gpu_queue_only.limit_for(spec(device="auto")) == 4  # auto jobs go to the default queue
    on_default = group_sizing(settings, [(["cpu", "default"], CPU), (["default", "gpu"], H200)])
    assert on_default.limit_for(spec(device="auto")) == 32 and on_default.limit_for(spec(device="cpu")) == 4


def test_a_group_too_big_for_the_smallest_gpu_is_split_by_the_footprint() -> None:
    big = spec(architecture={"kind": "mlp", "hidden": [2048, 2048, 2048]}, optimizer="adam", batch_size=512)
    fitting = models_fitting(big, SMALL_GPU["memory_mb"])
    assert fitting is not None and 1 < fitting < 32
    sizing = group_sizing(
        Settings(_env_file=None, max_fused_group_size=4, max_fused_gpu_group_size=256),  # type: ignore[call-arg]
        [(["default", "gpu"], H200), (["default", "gpu"], SMALL_GPU)],
    )
    assert sizing == GroupSizing(4, 256, True, SMALL_GPU["memory_mb"])
    groups = split_into_fused_groups(
        [big.model_copy(update={"seed": seed}) for seed in range(2 * fitting + 1)],
        4,
        limit_for=sizing.limit_for,
    )
    assert max(len(group) for group in groups) <= fitting and len(groups) == 3


def test_each_normalization_kind_has_its_own_footprint() -> None:
    # digits, 2 hidden layers of 10 and 20 units, batch 4, SGD: weights and the output bias are common.
    weights = 64 * 10 + 10 * 20 + 20 * 10 + 10
    units = 10 + 20

    def expected(per_unit: int, kept: int, noise: int = 0) -> int:
        return 4 * 2 * (2 * (weights + per_unit * units) + 4 * (64 + kept * units + 2 * 10) + noise)

    footprints = {
        "none": model_footprint_bytes(spec(batch_norm=False, normalization="none")),
        "batch": model_footprint_bytes(spec(normalization="batch")),
        "layer": model_footprint_bytes(spec(batch_norm=False, normalization="layer")),
        "group": model_footprint_bytes(spec(batch_norm=False, normalization="group", groups=5)),
        "noisy": model_footprint_bytes(spec(bn_noise={"mean_std": 0.5, "scale_std": 0.5})),
    }
    # Layer and group norm keep a bias beside γ and β and, written out by autograd, six values per unit.
    assert footprints["layer"] == footprints["group"] == expected(per_unit=3, kept=6)
    assert footprints["noisy"] == expected(per_unit=2, kept=5, noise=32 * units)
    assert footprints["batch"] == expected(per_unit=2, kept=4)
    assert footprints["none"] == expected(per_unit=1, kept=3)
    assert footprints["none"] < footprints["batch"] < footprints["layer"]
    assert footprints["batch"] < footprints["noisy"]

    # At scale activations dominate: layer norm is within 1.5× of BN, never below it; no normalization less.
    big = {
        "architecture": {"kind": "mlp", "hidden": [2048, 2048, 2048]},
        "dataset": "mnist",
        "batch_size": 512,
    }
    batch = model_footprint_bytes(spec(**big))
    layer = model_footprint_bytes(spec(**big, normalization="layer", batch_norm=False))
    none = model_footprint_bytes(spec(**big, batch_norm=False))
    assert batch is not None and layer is not None and none is not None
    assert none < batch < layer <= 1.5 * batch


def test_a_cnn_with_group_norm_counts_its_bias_and_its_written_out_values() -> None:
    cnn = {"architecture": {"kind": "cnn", "channels": [4, 8]}, "batch_norm": False}
    parameters = (9 * 1 * 4 + 3 * 4) + (9 * 4 * 8 + 3 * 8) + 8 * 2 * 2 * 10 + 10
    activations = 4 * (64 + 4 * 8 * 8 * 6.25 + 8 * 4 * 4 * 6.25 + 2 * 10)
    footprint = model_footprint_bytes(spec(**cnn, normalization="group", groups=4))
    assert footprint == int(4 * 2 * (parameters * 2 + activations))
