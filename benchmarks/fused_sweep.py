"""A sweep trained fused against the same jobs trained one after another: `python benchmarks/fused_sweep.py`.

The sweep is the paper's digits MLP with BN (3x100 sigmoid, batch 60, SGD, 2,000 steps, evaluated every 50
steps) over 4 learning rates x M/4 seeds: M = 16 by default, also 4 and 64. Both sides go through bnlab's
training core — `run` once per job, `run_fused` once for the group — in one process, taking turns so that
drifts in machine load hit both alike, and each call is timed whole (loading data and building nets
included: that is what a sweep waits for). Prints, per M and torch thread count, the median model-steps
per second of each side over the rounds, with both wall-clock and process CPU time (the CPU time of a
one-thread run hides other processes competing for the core; with more threads it sums theirs), and the
speedups. The fused models' results are checked against the separate ones, so a fast wrong answer cannot
pass unnoticed.

For scale it also times the matrix products of one fused step alone on one thread (forward and backward,
the same shapes, nothing else): no fused step can beat them, so their speed over the separate runs' bounds
the ratio attainable per core.
`--profile` prints torch.profiler's table of a fused run's operations.

Goal on a CPU (issue 16): fused >= 2.5x the separate runs at M = 16 on one thread, in CPU time (the
`cpu:` ratio; on a shared machine the wall-clock one mostly measures who else ran). On a GPU machine:
`python benchmarks/fused_sweep.py --device cuda --models 64 256 --threads 1` (goal >= 12x; there the bound
is timed on the GPU, in wall-clock time).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from paper_sweep import LEARNING_RATES, paper_mlp_spec

from core.ml import run
from core.ml.fused import run_fused
from core.results import Callbacks, Result
from core.settings import Settings
from core.spec import JobSpec


def sweep_specs(models: int, steps: int, device: str) -> list[JobSpec]:
    """`models` jobs: the learning rates, each with seeds 0, 1, ... (models / 4 of them)."""
    return [
        JobSpec.model_validate(
            paper_mlp_spec(
                LEARNING_RATES[index % len(LEARNING_RATES)], index // len(LEARNING_RATES), steps, device
            )
        )
        for index in range(models)
    ]


@dataclass(frozen=True)
class Timing:
    wall_seconds: float
    cpu_seconds: float
    results: list[Result]


def timed(train: Callable[[], list[Result]]) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    results = train()
    _synchronize()
    return Timing(time.perf_counter() - wall, time.process_time() - cpu, results)


def compare(models: int, steps: int, threads: int, rounds: int, device: str) -> None:
    specs = sweep_specs(models, steps, device)
    settings = Settings(torch_threads=threads)
    model_steps = models * steps
    run(specs[0].model_copy(update={"steps": 10}), settings=settings)  # imports, dataset cache, warm-up
    separate: list[Timing] = []
    fused: list[Timing] = []
    for _ in range(rounds):
        separate.append(timed(lambda: [run(spec, settings=settings) for spec in specs]))
        fused.append(timed(lambda: run_fused(specs, [Callbacks() for _ in specs], settings=settings)))
    largest_difference = check_agreement(separate[-1].results, fused[-1].results)

    def rate(timings: list[Timing], seconds: str) -> float:
        return model_steps / statistics.median(getattr(timing, seconds) for timing in timings)

    separate_wall, fused_wall = rate(separate, "wall_seconds"), rate(fused, "wall_seconds")
    separate_cpu, fused_cpu = rate(separate, "cpu_seconds"), rate(fused, "cpu_seconds")
    bound = ""
    if device != "cpu":  # an accelerator: wall-clock time is its clock
        products = products_alone_model_steps_per_second(models, device)
        bound = f" | products alone {products:6.0f} (bound on the ratio {products / separate_wall:4.1f})"
    elif threads == 1:  # per core: CPU time is the fair clock, and the one the bound is measured with
        products = products_alone_model_steps_per_second(models, device)
        bound = f" | products alone {products:6.0f} (bound on the ratio {products / separate_cpu:4.1f})"
    print(
        f"M={models:3d} threads={threads}  model-steps/s  wall: separate {separate_wall:6.0f}  fused "
        f"{fused_wall:6.0f}  ratio {fused_wall / separate_wall:5.2f} | cpu: separate {separate_cpu:6.0f}  "
        f"fused {fused_cpu:6.0f}  ratio {fused_cpu / separate_cpu:5.2f}{bound} | sweep wall time: separate "
        f"{statistics.median(t.wall_seconds for t in separate):5.1f} s, fused "
        f"{statistics.median(t.wall_seconds for t in fused):5.1f} s | largest |Δ final val loss| "
        f"{largest_difference:.1e}",
        flush=True,
    )


def products_alone_model_steps_per_second(models: int, device: str, repeats: int = 200) -> float:
    """Model-steps/s of a fused step's bmm products alone (64 → 100 → 100 → 100 → 10): on a CPU on one
    thread in process time, on an accelerator in wall-clock time."""
    on_cpu = device == "cpu"
    if on_cpu:
        torch.set_num_threads(1)
    widths = [64, 100, 100, 100, 10]
    inputs = torch.randn(models, 60, widths[0], device=device)
    weights = [torch.randn(models, out, width, device=device) for width, out in itertools.pairwise(widths)]

    def products() -> None:
        activations = [inputs]
        for weight in weights:
            activations.append(torch.bmm(activations[-1], weight.transpose(1, 2)))
        gradient = torch.randn_like(activations[-1])
        for index in reversed(range(len(weights))):
            torch.bmm(gradient.transpose(1, 2), activations[index])
            if index > 0:
                gradient = torch.bmm(gradient, weights[index])

    clock = time.process_time if on_cpu else time.perf_counter
    products()
    _synchronize()
    started = clock()
    for _ in range(repeats):
        products()
    _synchronize()
    return models * repeats / (clock() - started)


def _synchronize() -> None:
    """Wait for an accelerator's queued kernels (a no-op without one)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def profile_fused(models: int, steps: int, device: str) -> None:
    from torch.profiler import ProfilerActivity, profile

    specs = sweep_specs(models, steps, device)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as profiler:
        run_fused(specs, [Callbacks() for _ in specs], settings=Settings(torch_threads=1))
    table = profiler.key_averages(group_by_input_shape=True).table(
        sort_by="self_cpu_time_total", row_limit=20
    )
    print(table)


def check_agreement(separate: list[Result], fused: list[Result]) -> float:
    """Every fused model ends as its separate run did, with the same final validation figures (within 1e-4;
    bnlab's fused models compute them to the bit). Returns the largest difference in final val loss."""
    largest = 0.0
    for alone, together in zip(separate, fused, strict=True):
        same_outcome = alone.outcome == together.outcome
        alone_loss, together_loss = alone.summary.final_val_loss, together.summary.final_val_loss
        difference = 0.0 if alone_loss is None or together_loss is None else abs(alone_loss - together_loss)
        if not (same_outcome and difference <= 1e-4):
            raise SystemExit(f"fused and separate results disagree: {alone} vs {together}")
        largest = max(largest, difference)
    return largest


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models", type=int, nargs="+", default=[4, 16, 64], help="group sizes M (multiples of 4)"
    )
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per M and thread count")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--profile", action="store_true", help="profile one fused run of M=16 instead")
    arguments = parser.parse_args()
    if arguments.profile:
        profile_fused(16, min(arguments.steps, 500), arguments.device)
        return
    for threads in arguments.threads:
        for models in arguments.models:
            compare(models, arguments.steps, threads, arguments.rounds, arguments.device)


if __name__ == "__main__":
    main()
