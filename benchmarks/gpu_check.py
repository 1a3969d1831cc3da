"""One command for a GPU machine: `python benchmarks/gpu_check.py` (< 5 minutes; `--device cpu` on a CPU).

Measures, on the paper's digits MLP with BN (3x100 sigmoid, batch 60, SGD, 4 learning rates x M/4 seeds):
- a single job through `core.ml.run`: steps/s;
- fused groups through `core.ml.fused.run_fused` at M = 256, 1,024, 4,096: model-steps/s;
- beside each, in the same process, the same math as a plain script (the anchor): stacked parameters,
  batches drawn on the device, baddbmm, BN over each model's batch, sigmoid, cross-entropy, autograd, SGD;
  and the ratio of bnlab to it;
- the GPU-busy share of a fused group's training (kernel time from torch.profiler over its wall time);
- each group's peak GPU memory per model beside the footprint `core.group_sizes` computes for it (that
  formula cuts groups to a GPU's memory), and the group size to set as `BNLAB_MAX_FUSED_GPU_GROUP_SIZE`: the
  fastest M measured (the default, 1,024, is the best measured on one H200 so far);
and then runs `pytest -m gpu` (the CUDA-path tests). Then the service part (`gpu_service_check.py`): the
embedded mode on the device, one job and a 1,024-job fused sweep from POST to the last result (goal on one
H200: 15 s). `--skip-service` / `--service-only` run one part; on a CPU: `--device cpu --sweep-size 16`.
Nothing to install beyond bnlab's core dependencies (the service part needs the API's too: `make install`).
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gpu_service_check import run_service_check, sweep_size_error

from core.group_sizes import model_footprint_bytes
from core.ml import run
from core.ml.data import load_dataset
from core.ml.fused import run_fused
from core.results import Callbacks, Progress
from core.settings import Settings
from core.spec import JobSpec

LEARNING_RATES = (0.05, 0.1, 0.2, 0.5)
WIDTH, DEPTH, BATCH, CLASSES = 100, 3, 60, 10
NO_TESTS_COLLECTED = 5  # pytest's exit code


def paper_spec(rate: float, seed: int, steps: int, device: str) -> JobSpec:
    return JobSpec.model_validate(
        {
            "architecture": {"kind": "mlp", "hidden": [WIDTH] * DEPTH, "activation": "sigmoid"},
            "batch_norm": True,
            "learning_rate": rate,
            "dropout": 0.0,
            "batch_size": BATCH,
            "steps": steps,
            "eval_every": steps,
            "checkpoint_every": 0,
            "seed": seed,
            "device": device,
        }
    )


class StepClock:
    """Times training from the step-0 progress report to the last one (data loading and builds excluded)."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.last = 0.0

    def __call__(self, progress: Progress) -> None:
        now = time.perf_counter()
        if progress.step == 0 and self.first is None:
            self.first = now
        self.last = now

    def seconds(self) -> float:
        return self.last - (self.first or self.last)


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def single_job(steps: int, device: str) -> float:
    clock = StepClock()
    run(paper_spec(0.1, 0, steps, device), Callbacks(on_progress=clock), settings=Settings())
    return steps / clock.seconds()


def fused_group(models: int, steps: int, device: str) -> tuple[float, int | None]:
    """Model-steps/s of a fused group's training, and its peak GPU memory per model in bytes above what was
    allocated before it started (None on a CPU)."""
    specs = [paper_spec(LEARNING_RATES[i % 4], i // 4, steps, device) for i in range(models)]
    clock = StepClock()
    callbacks = [Callbacks(on_progress=clock)] + [Callbacks() for _ in specs[1:]]
    on_gpu = device.startswith("cuda")
    if on_gpu:
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    run_fused(specs, callbacks, settings=Settings())
    per_model = None
    if on_gpu:
        synchronize(device)
        per_model = (torch.cuda.max_memory_allocated(device) - before) // models
    return models * steps / clock.seconds(), per_model


def megabytes(size: int | None) -> str:
    return "n/a" if size is None else f"{size / 2**20:.2f}"


def gpu_busy_share(models: int, steps: int, device: str) -> float:
    """The share of a fused group's training time the GPU spends running kernels (torch.profiler)."""
    specs = [paper_spec(LEARNING_RATES[i % 4], i // 4, steps, device) for i in range(models)]
    clock = StepClock()
    callbacks = [Callbacks(on_progress=clock)] + [Callbacks() for _ in specs[1:]]
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as profile:
        run_fused(specs, callbacks, settings=Settings())
        torch.cuda.synchronize()
    kernel_seconds = sum(event.self_device_time_total for event in profile.key_averages()) / 1e6
    return min(1.0, kernel_seconds / clock.seconds())


def anchor(models: int, steps: int, device: str) -> float:
    """The same math as a plain script: model-steps/s."""
    data = load_dataset("digits", 0, device, Settings())
    train_x, train_y = data.train_x.flatten(1), data.train_y
    generator = torch.Generator(device=device).manual_seed(0)
    widths = [train_x.shape[1]] + [WIDTH] * DEPTH
    weights = [
        (torch.randn(models, fan_in, fan_out, device=device) / fan_in**0.5).requires_grad_()
        for fan_in, fan_out in itertools.pairwise(widths)
    ]
    gammas = [torch.ones(models, 1, WIDTH, device=device, requires_grad=True) for _ in range(DEPTH)]
    betas = [torch.zeros(models, 1, WIDTH, device=device, requires_grad=True) for _ in range(DEPTH)]
    head = (torch.randn(models, WIDTH, CLASSES, device=device) / WIDTH**0.5).requires_grad_()
    head_bias = torch.zeros(models, 1, CLASSES, device=device, requires_grad=True)
    parameters = [*weights, *gammas, *betas, head, head_bias]
    rates = torch.tensor([LEARNING_RATES[i % 4] for i in range(models)], device=device)

    def step() -> None:
        indices = torch.randint(0, len(train_y), (models, BATCH), device=device, generator=generator)
        hidden = train_x[indices]
        for weight, gamma, beta in zip(weights, gammas, betas, strict=True):
            pre = torch.bmm(hidden, weight)
            mean, var = pre.mean(dim=1, keepdim=True), pre.var(dim=1, unbiased=False, keepdim=True)
            hidden = torch.sigmoid((pre - mean) * torch.rsqrt(var + 1e-5) * gamma + beta)
        logits = torch.baddbmm(head_bias, hidden, head)
        loss = F.cross_entropy(logits.flatten(0, 1), train_y[indices].flatten()) * models
        gradients = torch.autograd.grad(loss, parameters)
        with torch.no_grad():
            for parameter, gradient in zip(parameters, gradients, strict=True):
                parameter.sub_(gradient * rates.view(-1, *[1] * (parameter.dim() - 1)))

    for _ in range(3):
        step()
    synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return models * steps / (time.perf_counter() - started)


def trainer_check(arguments: argparse.Namespace) -> int:
    """The trainer part: single job, fused groups against the anchor, GPU busy share, `pytest -m gpu`."""
    on_gpu = arguments.device.startswith("cuda")
    models = arguments.models or ([256, 1024, 4096] if on_gpu else [4, 16])
    steps = arguments.steps or (300 if on_gpu else 40)
    print(f"{steps} steps per run; single job (run): {single_job(steps, arguments.device):,.0f} steps/s")
    formula = model_footprint_bytes(paper_spec(0.1, 0, steps, arguments.device))
    print(
        f"{'M':>6} {'bnlab model-steps/s':>20} {'anchor model-steps/s':>21} {'ratio':>6}"
        f" {'MB/model peak':>14} {'MB/model formula':>17}"
    )
    speeds: dict[int, float] = {}
    for size in models:
        fused, per_model = fused_group(size, steps, arguments.device)
        plain = anchor(size, steps, arguments.device)
        speeds[size] = fused
        print(
            f"{size:>6} {fused:>20,.0f} {plain:>21,.0f} {fused / plain:>6.2f}"
            f" {megabytes(per_model):>14} {megabytes(formula):>17}",
            flush=True,
        )
    if on_gpu:
        best = max(speeds, key=speeds.__getitem__)
        print(f"fastest group measured: M = {best:,} -> BNLAB_MAX_FUSED_GPU_GROUP_SIZE={best}")
    if on_gpu:
        size = models[len(models) // 2]
        share = gpu_busy_share(size, steps // 2, arguments.device)
        print(f"GPU busy during a fused group's training (M = {size:,}, torch.profiler): {share:.0%}")
    if arguments.no_tests:
        return 0
    root = Path(__file__).resolve().parent.parent
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "tests/core/ml"]
    print("$", " ".join(command[2:]), flush=True)
    code = subprocess.call(command, cwd=root)
    return 0 if code == NO_TESTS_COLLECTED and not on_gpu else code  # a CPU deselects them all


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--models", type=int, nargs="+", help="fused group sizes (GPU: 256 1024 4096)")
    parser.add_argument("--steps", type=int, help="steps per run (GPU: 300)")
    parser.add_argument("--no-tests", action="store_true", help="skip `pytest -m gpu`")
    parts = parser.add_mutually_exclusive_group()
    parts.add_argument("--skip-service", action="store_true", help="only the trainer part")
    parts.add_argument("--service-only", action="store_true", help="only the service part")
    parser.add_argument(
        "--sweep-size", type=int, default=1024, help="the service part's sweep (multiple of 4)"
    )
    arguments = parser.parse_args()
    if (problem := sweep_size_error(arguments.sweep_size)) and not arguments.skip_service:
        parser.error(problem)
    on_gpu = arguments.device.startswith("cuda")
    if on_gpu and not torch.cuda.is_available():
        sys.exit("no CUDA device: run with --device cpu to check this script on a CPU")
    name = torch.cuda.get_device_name() if on_gpu else "cpu"
    print(f"device {arguments.device} ({name}), torch {torch.__version__}")
    codes = [] if arguments.service_only else [trainer_check(arguments)]
    if not arguments.skip_service:
        codes.append(run_service_check(arguments.device, arguments.sweep_size))
    sys.exit(max(codes))


if __name__ == "__main__":
    main()
