"""One GPU per worker on a node with several: `docker compose up --scale worker=N` starts N identical
containers that each see every GPU, and CUDA would put all N on the first card. Instead each worker, in
its main process and before anything touches CUDA, claims the first free slot of a folder the node's
workers share (`BNLAB_GPU_SLOTS_DIR`, a volume) by an exclusive `flock` on the slot's file, and sets
`CUDA_VISIBLE_DEVICES` to that slot's GPU, which its pool processes and its device probe inherit.

Slot s trains on GPU s mod G (G GPUs, `BNLAB_WORKERS_PER_GPU` slots each), so workers spread evenly over
the cards first. The lock lives as long as the worker's processes hold the file open, so a worker that
dies, however it dies, frees its slot for the next one. A worker that finds every slot taken shares a GPU
(chosen by its process id) and says so in its log. `CUDA_VISIBLE_DEVICES` already set is left alone.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import MutableMapping
from pathlib import Path
from typing import IO

from core.devices import DeviceFacts, detect_device
from core.settings import Settings

logger = logging.getLogger(__name__)

_held: list[IO[str]] = []  # the claimed slot's open lock file, kept for the life of the process


def claim_slot(slots_dir: Path, slots: int) -> tuple[int, IO[str]] | None:
    """The first slot in 0..slots-1 whose lock file nobody holds, and its locked file; None when all are
    held."""
    slots_dir.mkdir(parents=True, exist_ok=True)
    for slot in range(slots):
        handle = (slots_dir / f"gpu-slot-{slot}.lock").open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        return slot, handle
    return None


def pin_to_a_gpu(
    settings: Settings,
    device: DeviceFacts | None = None,
    environment: MutableMapping[str, str] = os.environ,
) -> int | None:
    """Claim a slot and pin this process (and those it starts) to the slot's GPU; the GPU's index, or
    None when there is nothing to pin (no slots folder, no CUDA, or CUDA_VISIBLE_DEVICES already set)."""
    if not settings.gpu_slots_dir or "CUDA_VISIBLE_DEVICES" in environment:
        return None
    device = device if device is not None else detect_device(settings)
    if device.kind != "cuda":
        return None
    gpus = max(1, device.count)
    claimed = claim_slot(Path(settings.gpu_slots_dir), gpus * settings.workers_per_gpu)
    if claimed is None:
        gpu = os.getpid() % gpus
        logger.warning("every GPU slot in %s is taken: sharing GPU %d", settings.gpu_slots_dir, gpu)
    else:
        slot, handle = claimed
        _held.append(handle)
        gpu = slot % gpus
        logger.info("claimed GPU slot %d in %s: training on GPU %d", slot, settings.gpu_slots_dir, gpu)
    environment["CUDA_VISIBLE_DEVICES"] = str(gpu)
    return gpu
