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
