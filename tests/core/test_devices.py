"""Device facts: probed in a child process (this process never imports torch for them), or taken as said
from BNLAB_WORKER_DEVICE_KIND; the queues a worker consumes follow the device's kind."""

from __future__ import annotations

import subprocess
import sys

from core.devices import DECLARED_CUDA_NAME, DeviceFacts, cpu_facts, detect_device, queues_for
from core.settings import Settings
from tests.fixtures.worker import PROJECT_ROOT


def test_the_probe_runs_torch_in_a_child_and_reports_what_torch_sees() -> None:
    probe = (
        "import sys, torch; from core.devices import detect_device; from core.settings import Settings\n"
        "del sys.modules['torch']\n"
        "facts = detect_device(Settings(torch_threads=3))\n"
        "assert 'torch' not in sys.modules, 'the probe imported torch in the caller'\n"
        "print(facts.kind, facts.threads, torch.cuda.is_available())"
    )
    answer = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert answer[0] == ("cuda" if answer[2] == "True" else "cpu") and answer[1] == "3"


def test_a_declared_device_is_taken_as_said_and_chooses_the_queues() -> None:
    declared_gpu = detect_device(Settings(worker_device_kind="cuda", torch_threads=2))
    assert declared_gpu == DeviceFacts("cuda", DECLARED_CUDA_NAME, 1, None, 2)
    assert queues_for(declared_gpu) == ["default", "gpu"]

    declared_cpu = detect_device(Settings(worker_device_kind="cpu"))
    assert declared_cpu == cpu_facts(1) and declared_cpu.kind == "cpu" and declared_cpu.count >= 1
    assert queues_for(declared_cpu) == ["default", "cpu"]
    assert DeviceFacts.from_json(declared_gpu.as_json()) == declared_gpu
