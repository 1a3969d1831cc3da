"""What loss-landscape probes cost, as a fraction of training time: `python benchmarks/landscape_cost.py`.

Trains the paper's MLP (3x100 sigmoid, batch 60, SGD at 0.1, digits, evaluated every 100 steps) with BN
and without it through `run()`, with `landscape_every` = 0 (off), 100 and 500, in one process, one torch
thread, taking turns so that drifts in machine load hit every variant alike. Each run is timed from its
step-0 progress report to its last one (no data loading, no model building).

The cost of a variant is its training time over the time with probes off, minus one. Prints it two ways:
the median over rounds of the per-round ratio (each round's runs are neighbours in time, so load drifts
cancel) and the ratio of the best times (other processes only ever slow a run down, so on a shared machine
the bests are the steadier figure). On a busy machine both still wander by a few percent, so it also
times one probe by itself (best of PROBE_ROUNDS rounds of PROBE_CALLS calls, on the same net and probe
batch as in a run) and prints the cost that implies: probe time ÷ (interval × training time per step).
Goal: <= 7% at landscape_every = 100.
"""

from __future__ import annotations

import argparse
import statistics
import time

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


def training_seconds(spec: JobSpec, settings: Settings) -> float:
    times: dict[int, float] = {}

    def note(progress: Progress) -> None:
        times[progress.step] = time.perf_counter()

    result = run(spec, Callbacks(on_progress=note), settings=settings)
    assert result.outcome == "succeeded"
    return times[spec.steps] - times[0]


def probe_seconds(spec: JobSpec, settings: Settings) -> float:
    """One probe's time by itself: the best of PROBE_ROUNDS rounds, each the mean of PROBE_CALLS calls."""
    device = resolve_device(spec.device)
    data = load_dataset(spec.dataset, spec.seed, device, settings)
    model = build_model(spec, data.input_shape, data.num_classes).to(device)
    probe = LandscapeProbe.for_run(model, data.train_x, data.train_y, spec)
    probe(step=0)  # warm-up
    rounds = []
    for _ in range(PROBE_ROUNDS):
        started = time.perf_counter()
        for _ in range(PROBE_CALLS):
            probe(step=0)  # each call ends in a read from the device, so the clock sees all of its work
        rounds.append((time.perf_counter() - started) / PROBE_CALLS)
    return min(rounds)


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
        f"{'':12s} {'every':>5s} {'probes':>6s} {'median ratio':>13s} {'ratio of bests':>15s}"
        f" {'from one probe':>15s}"
    )
    for batch_norm in (True, False):
        specs = {
            every: paper_spec(batch_norm, arguments.steps, arguments.device, every) for every in INTERVALS
        }
        for spec in specs.values():  # warm-up: first-call costs (imports, allocator) are not the loop's
            training_seconds(spec, settings)
        seconds: dict[int, list[float]] = {every: [] for every in INTERVALS}
        for round_number in range(arguments.rounds):
            order = list(INTERVALS) if round_number % 2 == 0 else list(reversed(INTERVALS))
            for every in order:
                seconds[every].append(training_seconds(specs[every], settings))
        baseline = seconds[0]
        step_seconds = min(baseline) / arguments.steps
        one_probe = probe_seconds(specs[100], settings)
        label = "with BN" if batch_norm else "without BN"
        for every in INTERVALS[1:]:
            probes = arguments.steps // every
            per_round = [probed / off for probed, off in zip(seconds[every], baseline, strict=True)]
            median_cost = statistics.median(per_round) - 1
            best_cost = min(seconds[every]) / min(baseline) - 1
            implied_cost = one_probe / (every * step_seconds)
            print(
                f"{label:12s} {every:5d} {probes:6d} {median_cost:13.1%} {best_cost:15.1%}"
                f" {implied_cost:15.1%}"
            )
        print(
            f"{label:12s} one probe {one_probe * 1e3:.2f} ms = {one_probe / step_seconds:.1f} training steps "
            f"of {step_seconds * 1e3:.3f} ms (best run without probes: {min(baseline):.3f} s)"
        )


if __name__ == "__main__":
    main()
