"""The device facts of this machine as torch sees them, printed as one JSON line by
`python -m core.ml.device_info` (what `core.devices.probe_device` runs in a child process, so that neither
the API nor a worker's main process imports torch or touches CUDA), and the torch device a spec's `device`
names on this machine (`resolve_device`).

torch reports CUDA devices by what is visible (`CUDA_VISIBLE_DEVICES` narrows it); `memory_mb` is the
first visible device's total memory.
"""

from __future__ import annotations

import json

import torch

from core.devices import DeviceFacts, cpu_facts
from core.settings import get_settings


def device_facts(threads: int) -> DeviceFacts:
    """The first visible CUDA device (and how many there are) when CUDA is available, else the CPU."""
    if not torch.cuda.is_available():
        return cpu_facts(threads)
    properties = torch.cuda.get_device_properties(0)
    return DeviceFacts(
        kind="cuda",
        name=properties.name,
        count=torch.cuda.device_count(),
        memory_mb=properties.total_memory // 2**20,
        threads=threads,
    )


def resolve_device(requested: str) -> torch.device:
    """`auto`: the current CUDA device if there is one, else the CPU; CUDA where there is none: ValueError."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(requested)
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise ValueError(f"device {requested!r} was requested, but CUDA is not available on this machine")
    index = torch.cuda.current_device() if device.index is None else device.index
    if index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ValueError(f"device {requested!r} was requested, but this machine has {count} CUDA device(s)")
    return torch.device("cuda", index)


if __name__ == "__main__":
    print(json.dumps(device_facts(get_settings().torch_threads).as_json()))
