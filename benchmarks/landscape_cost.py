"""What loss-landscape probes cost, as a fraction of training time: `python benchmarks/landscape_cost.py`.

Trains the paper's MLP (3x100 sigmoid, batch 60, SGD at 0.1, digits, evaluated every 100 steps) with BN
and without it through `run()`, with `landscape_every` = 0 (off), 100 and 500, in one process, one torch
thread, taking turns so that drifts in machine load hit every variant alike. Each run is timed from its
step-0 progress report to its last one (no data loading, no model building).

The cost of a variant is its training time over the time with probes off, minus one, by two clocks: the
wall clock, and the process's CPU time (on the CPU with one thread, the work done: other processes on a
shared machine slow the wall clock down but barely change it; on a GPU only the wall clock counts). Each
clock gives the median over rounds of the per-round ratio (each round's runs are neighbours in time, so
load drifts cancel) and the ratio of the best times (other processes only ever slow a run down). It also
times one probe by itself (best of PROBE_ROUNDS rounds of PROBE_CALLS calls, on the same net and probe
batch as in a run) and prints the cost that implies: probe time ÷ (interval × training time per step).
Goal: <= 7% at landscape_every = 100.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import torch

from core.ml import run
from core.ml.data import load_dataset
from core.ml.landscape import LandscapeProbe
from core.ml.nets import build_model
from core.ml.training import resolve_device
from core.results import Callbacks, Progress
from core.settings import Settings
from core.spec import JobSpec

INTERVALS = (0, 100, 500)
PROBE_ROUNDS = 15
PROBE_CALLS = 40


def paper_spec(batch_norm: bool, steps: int, device: str, landscape_every: int) -> JobSpec:
    return JobSpec.model_validate(
        {
            "architecture": {"kind": "mlp", "hidden": [100, 100, 100], "activation": "sigmoid"},
            "batch_norm": batch_norm,
            "learning_rate": 0.1,
            "dropout": 0.0,
            "batch_size": 60,
            "steps": steps,
            "eval_every": 100,
            "checkpoint_every": 0,
            "landscape_every": landscape_every,
            "device": device,
        }
    )


@dataclass(frozen=True)
class Timing:
    """A stretch of work by the wall clock and by the process's CPU time, in seconds."""

    wall: float
    cpu: float


def training_time(spec: JobSpec, settings: Settings) -> Timing:
    marks: dict[int, Timing] = {}

    def note(progress: Progress) -> None:
        marks[progress.step] = Timing(time.perf_counter(), time.process_time())

    result = run(spec, Callbacks(on_progress=note), settings=settings)
    assert result.outcome == "succeeded"
    first, last = marks[0], marks[spec.steps]
    return Timing(last.wall - first.wall, last.cpu - first.cpu)


def costs(probed: list[float], off: list[float]) -> tuple[float, float]:
    """(median of the per-round ratios, ratio of the bests), each minus one."""
    per_round = [with_probes / without for with_probes, without in zip(probed, off, strict=True)]
    return statistics.median(per_round) - 1, min(probed) / min(off) - 1


def probe_time(spec: JobSpec, settings: Settings) -> Timing:
    """One probe by itself: the best of PROBE_ROUNDS rounds, each the mean of PROBE_CALLS calls."""
    device = resolve_device(spec.device)
    data = load_dataset(spec.dataset, spec.seed, device, settings)
    model = build_model(spec, data.input_shape, data.num_classes).to(device)
    probe = LandscapeProbe.for_run(model, data.train_x, data.train_y, spec)
    probe(step=0)  # warm-up
    rounds = []
    for _ in range(PROBE_ROUNDS):
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(PROBE_CALLS):
            probe(step=0)  # each call ends in a read from the device, so the clock sees all of its work
        rounds.append(
            Timing((time.perf_counter() - wall) / PROBE_CALLS, (time.process_time() - cpu) / PROBE_CALLS)
        )
    return Timing(min(timing.wall for timing in rounds), min(timing.cpu for timing in rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="steps per timed run")
    parser.add_argument("--rounds", type=int, default=9, help="timed runs of each variant")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    arguments = parser.parse_args()
    settings = Settings(torch_threads=arguments.threads)
    torch.set_num_threads(arguments.threads)
    print(
        f"device {resolve_device(arguments.device)}, {arguments.threads} thread(s), {arguments.steps} steps "
        f"x {arguments.rounds} rounds, paper MLP 3x100 sigmoid, batch 60, SGD 0.1, digits, eval every 100"
    )
    print(
        f"{'':12s} {'every':>5s} {'probes':>6s} {'wall: median':>13s} {'best':>6s} {'cpu: median':>12s}"
        f" {'best':>6s} {'from one probe (cpu)':>21s}"
    )
    for batch_norm in (True, False):
        specs = {
            every: paper_spec(batch_norm, arguments.steps, arguments.device, every) for every in INTERVALS
        }
        for spec in specs.values():  # warm-up: first-call costs (imports, allocator) are not the loop's
            training_time(spec, settings)
        timings: dict[int, list[Timing]] = {every: [] for every in INTERVALS}
        for round_number in range(arguments.rounds):
            order = list(INTERVALS) if round_number % 2 == 0 else list(reversed(INTERVALS))
            for every in order:
                timings[every].append(training_time(specs[every], settings))
        wall = {every: [timing.wall for timing in runs] for every, runs in timings.items()}
        cpu = {every: [timing.cpu for timing in runs] for every, runs in timings.items()}
        step_cpu = min(cpu[0]) / arguments.steps
        one_probe = probe_time(specs[100], settings)
        label = "with BN" if batch_norm else "without BN"
        for every in INTERVALS[1:]:
            wall_median, wall_best = costs(wall[every], wall[0])
            cpu_median, cpu_best = costs(cpu[every], cpu[0])
            implied = one_probe.cpu / (every * step_cpu)
            print(
                f"{label:12s} {every:5d} {arguments.steps // every:6d} {wall_median:13.1%} {wall_best:6.1%}"
                f" {cpu_median:12.1%} {cpu_best:6.1%} {implied:21.1%}"
            )
        print(
            f"{label:12s} one probe {one_probe.cpu * 1e3:.2f} ms cpu ({one_probe.wall * 1e3:.2f} ms wall) = "
            f"{one_probe.cpu / step_cpu:.1f} training steps of {step_cpu * 1e3:.3f} ms cpu; best run without "
            f"probes {min(wall[0]):.3f} s wall, {min(cpu[0]):.3f} s cpu"
        )


if __name__ == "__main__":
    main()
