"""Pinning workers to GPUs: each claims a slot of the shared folder and trains on that slot's GPU, so the
workers of one node spread over its cards; a worker that dies frees its slot; nothing is pinned without a
folder, without CUDA, or when CUDA_VISIBLE_DEVICES is already set."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from core.devices import DeviceFacts
from core.settings import Settings
from tests.fixtures.worker import PROJECT_ROOT
from worker.gpu_slots import claim_slot, pin_to_a_gpu

FOUR_GPUS = DeviceFacts("cuda", "NVIDIA H200", 4, 143771, 1)
HOLD_A_SLOT = """
import sys, time
from pathlib import Path
from worker.gpu_slots import claim_slot
claimed = claim_slot(Path(sys.argv[1]), 2)
print(claimed[0], flush=True)
time.sleep(60)
"""


def settings(slots_dir: Path, workers_per_gpu: int = 1) -> Settings:
    return Settings(_env_file=None, gpu_slots_dir=str(slots_dir), workers_per_gpu=workers_per_gpu)  # type: ignore[call-arg]


def test_workers_of_one_node_spread_over_its_gpus_before_sharing_one(tmp_path: Path) -> None:
    two_gpus = DeviceFacts("cuda", "NVIDIA H200", 2, 143771, 1)
    pinned = []
    for _worker in range(4):
        environment: dict[str, str] = {}
        pinned.append(pin_to_a_gpu(settings(tmp_path, workers_per_gpu=2), two_gpus, environment))
        assert environment["CUDA_VISIBLE_DEVICES"] == str(pinned[-1])
    assert pinned == [0, 1, 0, 1]
    # Every slot taken: a fifth worker shares a GPU rather than failing to start.
    assert pin_to_a_gpu(settings(tmp_path, workers_per_gpu=2), two_gpus, {}) in {0, 1}


def test_a_dead_workers_slot_is_free_again(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_A_SLOT, str(tmp_path)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "0"
        claimed = claim_slot(tmp_path, 2)
        assert claimed is not None and claimed[0] == 1
        claimed[1].close()
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 5
    while (claimed := claim_slot(tmp_path, 2)) is None or claimed[0] != 0:
        assert time.monotonic() < deadline, "the killed process's slot stayed taken"
        time.sleep(0.05)
    claimed[1].close()


def test_nothing_is_pinned_without_a_folder_without_cuda_or_when_already_pinned(tmp_path: Path) -> None:
    unpinned = Settings(_env_file=None)  # type: ignore[call-arg]
    assert pin_to_a_gpu(unpinned, FOUR_GPUS, {}) is None
    cpu = DeviceFacts("cpu", "AMD EPYC", 2, 8000, 1)
    assert pin_to_a_gpu(settings(tmp_path), cpu, environment := {}) is None and environment == {}
    already = {"CUDA_VISIBLE_DEVICES": "3"}
    assert pin_to_a_gpu(settings(tmp_path), FOUR_GPUS, already) is None and already == {
        "CUDA_VISIBLE_DEVICES": "3"
    }
    assert not list(tmp_path.iterdir())  # no slot was claimed
