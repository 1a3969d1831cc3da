"""What a worker trains on — its device facts — as the worker registry records them and the embedded
launcher reads them to choose its queues.

Torch-free: the API never imports torch, and a worker's main process must not touch CUDA either (a CUDA
context does not survive the fork that makes its pool processes). So `detect_device` asks a short-lived
child process (`python -m core.ml.device_info`, the one place that imports torch for this) and reads its
answer. `BNLAB_WORKER_DEVICE_KIND=cpu|cuda` skips the probe and is taken as said: tests use it to play a
GPU node without mocking CUDA, and an operator may use it on a node whose hardware is known.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from core.settings import Settings

logger = logging.getLogger(__name__)

DeviceKind = Literal["cpu", "cuda"]
PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Importing torch takes ~2 s on an idle machine and ~10 s on a loaded one; a probe that hangs (a wedged
# driver) must not keep a worker from starting: it then reports its CPU.
PROBE_TIMEOUT_SECONDS = 60.0
DECLARED_CUDA_NAME = "CUDA device (declared by BNLAB_WORKER_DEVICE_KIND, not probed)"


@dataclass(frozen=True)
class DeviceFacts:
    """The hardware one worker trains on. `count` is GPUs for cuda and logical CPUs for cpu; `memory_mb`
    the memory of one GPU, or the machine's memory (None when unknown); `threads` torch's thread count."""

    kind: DeviceKind
    name: str
    count: int
    memory_mb: int | None
    threads: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, fields: dict[str, Any]) -> DeviceFacts:
        return cls(
            kind="cuda" if fields["kind"] == "cuda" else "cpu",
            name=str(fields["name"]),
            count=int(fields["count"]),
            memory_mb=None if fields.get("memory_mb") is None else int(fields["memory_mb"]),
            threads=int(fields["threads"]),
        )


def cpu_model_name() -> str:
    """The CPU's model as Linux names it ("AMD EPYC 7B13"), else what the platform says, else "cpu"."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def machine_memory_mb() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    except (ValueError, OSError, AttributeError):
        return None


def cpu_facts(threads: int) -> DeviceFacts:
    return DeviceFacts("cpu", cpu_model_name(), os.cpu_count() or 1, machine_memory_mb(), threads)


def declared_cuda_facts(threads: int) -> DeviceFacts:
    """A GPU said to be there and not probed: its name says so, its memory is unknown."""
    return DeviceFacts("cuda", DECLARED_CUDA_NAME, 1, None, threads)


def probe_device(settings: Settings) -> DeviceFacts:
    """Ask a child process that imports torch what this machine trains on; the CPU when that fails."""
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "core.ml.device_info"],
            cwd=PROJECT_ROOT,
            env={**os.environ, "BNLAB_TORCH_THREADS": str(settings.torch_threads)},
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_SECONDS,
            check=True,
        )
        return DeviceFacts.from_json(json.loads(completed.stdout.strip().splitlines()[-1]))
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, IndexError) as error:
        logger.warning("could not probe the device (%s); reporting the CPU", error)
        return cpu_facts(settings.torch_threads)


def detect_device(settings: Settings) -> DeviceFacts:
    """What a worker started with `settings` trains on (see the module docstring)."""
    if settings.worker_device_kind == "cpu":
        return cpu_facts(settings.torch_threads)
    if settings.worker_device_kind == "cuda":
        return declared_cuda_facts(settings.torch_threads)
    return probe_device(settings)


def queues_for(device: DeviceFacts) -> list[str]:
    """The queues a worker on `device` consumes: `default` plus its own kind's (DESIGN: Queues)."""
    return ["default", "gpu" if device.kind == "cuda" else "cpu"]
