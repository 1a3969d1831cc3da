"""How much bnlab's training core costs over a bare PyTorch loop: `python benchmarks/core_vs_bare.py`.

Both train the same net (built by `build_model` from the same spec: the paper's 3x100 sigmoid MLP with BN
on digits), on the same batches (index batches from the same `BatchSampler`), with the same optimizer, in
one process, one torch thread, taking turns so that drifts in machine load hit both alike. The bare loop
does the work any training loop does — train, and evaluate on the held-out split every `eval_every` steps,
reading the two figures — and nothing else. `run()` additionally keeps per-step train loss and accuracy,
checks for divergence, reports progress and metrics, polls for a stop request and checkpoints; with
telemetry on it also probes every hidden layer every 100 steps.

Speeds are timed from outside: the bare loop around its loop, `run()` from its step-0 progress report to
its last one, so neither includes loading data or building the net. Prints the median and the best steps/s of
each and their ratios to the bare loop's (targets on a CPU: >= 0.95 with telemetry off, >= 0.85 with
telemetry every 100 steps). Other processes on the machine only ever slow a run down, so on a shared machine
the ratio of the bests is the steadier figure.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from core.ml import run
from core.ml.data import load_dataset
from core.ml.nets import build_model
from core.ml.sampling import BatchSampler
from core.ml.training import build_optimizer, resolve_device
from core.results import Callbacks, Progress
from core.settings import Settings
from core.spec import JobSpec


def paper_spec(steps: int, device: str, telemetry_every: int) -> JobSpec:
    return JobSpec.model_validate(
        {
            "architecture": {"kind": "mlp", "hidden": [100, 100, 100], "activation": "sigmoid"},
            "batch_norm": True,
            "learning_rate": 0.1,
            "dropout": 0.0,
            "batch_size": 60,
            "steps": steps,
            "eval_every": 100,
            "telemetry_every": telemetry_every,
            "device": device,
        }
    )


def bare_steps_per_second(spec: JobSpec, settings: Settings) -> float:
    """The plain loop a person would write for the same job."""
    device = resolve_device(spec.device)
    data = load_dataset(spec.dataset, spec.seed, device, settings)
    model = build_model(spec, data.input_shape, data.num_classes).to(device)
    optimizer = build_optimizer(spec, model)
    sampler = BatchSampler(len(data.train_y), spec.batch_size, spec.seed, device)
    history: list[tuple[int, float, float]] = []
    _synchronize(device)
    started = time.perf_counter()
    for step in range(1, spec.steps + 1):
        indices = sampler.next()
        loss = F.cross_entropy(model(data.train_x[indices]), data.train_y[indices])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % spec.eval_every == 0:
            model.eval()
            with torch.no_grad():
                logits = model(data.val_x)
                val_loss = F.cross_entropy(logits, data.val_y).item()
                val_accuracy = (logits.argmax(dim=1) == data.val_y).float().mean().item()
            model.train()
            history.append((step, val_loss, val_accuracy))
    _synchronize(device)
    return spec.steps / (time.perf_counter() - started)


def core_steps_per_second(spec: JobSpec, settings: Settings) -> float:
    times: dict[int, float] = {}

    def note(progress: Progress) -> None:
        times[progress.step] = time.perf_counter()

    result = run(spec, Callbacks(on_progress=note), settings=settings)
    assert result.outcome == "succeeded"
    return spec.steps / (times[spec.steps] - times[0])


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="steps per timed run")
    parser.add_argument("--rounds", type=int, default=15, help="timed runs of each variant")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    arguments = parser.parse_args()
    settings = Settings(torch_threads=arguments.threads)
    torch.set_num_threads(arguments.threads)
    variants = {
        "bare loop": lambda: bare_steps_per_second(
            paper_spec(arguments.steps, arguments.device, 0), settings
        ),
        "run(), telemetry off": lambda: core_steps_per_second(
            paper_spec(arguments.steps, arguments.device, 0), settings
        ),
        "run(), telemetry every 100": lambda: core_steps_per_second(
            paper_spec(arguments.steps, arguments.device, 100), settings
        ),
    }
    for measure in variants.values():  # warm-up: first-call costs (imports, allocator) are not the loop's
        measure()
    speeds: dict[str, list[float]] = {name: [] for name in variants}
    for round_number in range(arguments.rounds):
        names = list(variants)
        if round_number % 2:  # alternate the order too, so no variant always runs right after another
            names.reverse()
        for name in names:
            speeds[name].append(variants[name]())
    device = resolve_device(arguments.device)
    print(
        f"device {device}, {arguments.threads} thread(s), {arguments.steps} steps x {arguments.rounds} "
        "rounds, paper MLP 3x100 sigmoid + BN, batch 60, SGD, digits"
    )
    bare_median, bare_best = statistics.median(speeds["bare loop"]), max(speeds["bare loop"])
    print(f"{'':28s} {'median':>8s} {'best':>8s} steps/s   ratio of medians, of bests")
    for name, values in speeds.items():
        median, best = statistics.median(values), max(values)
        ratios = f"{median / bare_median:.3f}  {best / bare_best:.3f}"
        print(f"{name:28s} {median:8.0f} {best:8.0f}           {ratios}")


if __name__ == "__main__":
    main()
