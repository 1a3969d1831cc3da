"""The 16-configuration sweep of DESIGN.md's "Facts measured", submitted through the service, fused against
one task a job: `python benchmarks/service_sweep.py [--rounds 2] [--steps 2000] [--deployed] [--one-service]`.

The sweep is the paper's digits MLP with BN over 4 learning rates x seeds 0..3, 2,000 steps each
(`paper_sweep.py`, the jobs `fused_sweep.py` times inside one process), sent as ONE `POST /v1/sweeps`
(base spec + grid over `learning_rate` + seeds) with `"execution": "fused"` or `"separate"`. Each run
starts the real service (`python -m api.embedded`: the API and one prefork worker on one torch thread) in a
fresh temporary directory, waits until its worker has trained a warm-up job (neither mode pays for the
worker's start), and times from just before the POST to the end of the sweep's last job (its `finished_at`:
the service runs on this machine, so its clock is this script's). Runs alternate (fused, separate, fused,
...) so that drifts in machine load hit both alike; other processes only ever slow a run down, so on a
shared machine the best time of each mode is the steadier figure.

`--one-service` runs every sweep on one service started once instead (a quick check that the script works,
as its test runs it: the runs then share a database and the worker's pool process).

Embedded by default (SQLite database, kombu's SQLAlchemy transport on SQLite); `--deployed` puts the same
launcher on a PostgreSQL database created for each run and dropped after it (`--admin-dsn`) and a private
`redis-server` on a free port.

Prints one line per run (its execution as the service reports it, wall time, model-steps/s, and how long
after the POST its first job started: the service's share before any training), then per mode
the best and median wall time and the model-steps/s at each, and the speed-up of fused over separate. It
exits with an error unless every run trained the sweep as requested (fused: its 16 jobs in fused groups)
and every run ended each job as the first fused run did: the same status (succeeded or diverged, at the
same step) and, where not diverged, a final validation loss within 1e-4.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from paper_sweep import LEARNING_RATES, paper_mlp_spec
from service_harness import ADMIN_DSN, embedded_service, private_postgres, private_redis

SEEDS = (0, 1, 2, 3)
EXECUTIONS = ("fused", "separate")
LOSS_TOLERANCE = 1e-4
POLL_SECONDS = (
    1.0  # how soon the script notices the end (the time is the last finished_at), rarely: it competes
)
SWEEP_TIMEOUT_SECONDS = 1800.0
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "diverged", "cancelled"})


@dataclass(frozen=True)
class JobEnd:
    """How one job of the sweep ended."""

    status: str
    diverged_at_step: int | None
    final_val_loss: float | None


@dataclass(frozen=True)
class SweepRun:
    execution: str
    how_executed: str
    seconds: float  # from the POST to the last job's end
    queued_seconds: float  # from the POST to the first job's start
    jobs: dict[tuple[float, int], JobEnd]  # by (learning rate, seed)


def sweep_request(execution: str, steps: int) -> dict[str, Any]:
    return {
        "name": f"paper-digits-bn-{execution}",
        "base": paper_mlp_spec(LEARNING_RATES[0], SEEDS[0], steps, "cpu"),
        "grid": {"learning_rate": list(LEARNING_RATES)},
        "seeds": list(SEEDS),
        "execution": execution,
    }


def timestamp(job: dict[str, Any], field: str) -> float:
    """The job's `started_at` or `finished_at` on this machine's clock (seconds since the epoch)."""
    return datetime.fromisoformat(job[field]).timestamp()


def final_val_loss(client: httpx.Client, job_id: str) -> float | None:
    series = client.get(f"/v1/jobs/{job_id}/metrics", params={"name": "val_loss"}).raise_for_status().json()
    values = series["series"].get("val_loss", {}).get("values", [])
    return values[-1] if values else None


def sweep_jobs(client: httpx.Client, sweep_id: str) -> list[dict[str, Any]]:
    page = client.get("/v1/jobs", params={"sweep_id": sweep_id, "limit": 200}).raise_for_status().json()
    jobs: list[dict[str, Any]] = page["items"]
    return jobs


def run_sweep(client: httpx.Client, execution: str, steps: int) -> SweepRun:
    """Submit the sweep, wait for its last job, and read how every job ended."""
    submitted = time.time()
    created = client.post("/v1/sweeps", json=sweep_request(execution, steps)).raise_for_status().json()
    deadline = time.monotonic() + SWEEP_TIMEOUT_SECONDS
    while True:
        sweep = client.get(f"/v1/sweeps/{created['id']}").raise_for_status().json()
        if sweep["done"] == sweep["size"]:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"the {execution} sweep did not finish in {SWEEP_TIMEOUT_SECONDS:.0f} s")
        time.sleep(POLL_SECONDS)
    used = sweep["execution"]["used"]
    if used != execution:
        raise SystemExit(f"the {execution} sweep ran {used}: {sweep['execution']['note']}")
    jobs = sweep_jobs(client, created["id"])
    unexpected = [job for job in jobs if job["status"] not in {"succeeded", "diverged"}]
    if len(jobs) != created["size"] or unexpected:
        raise SystemExit(f"the {execution} sweep lost or failed jobs: {unexpected or jobs}")
    ends = {
        (job["spec"]["learning_rate"], job["spec"]["seed"]): JobEnd(
            status=job["status"],
            diverged_at_step=job["summary"]["diverged_at_step"],
            final_val_loss=final_val_loss(client, job["id"]) if job["status"] == "succeeded" else None,
        )
        for job in jobs
    }
    groups = [group["size"] for group in sweep["execution"]["fused_groups"]]
    how = f"fused groups of {', '.join(map(str, groups))}" if groups else "one task a job"
    ended = max(timestamp(job, "finished_at") for job in jobs)
    started = min(timestamp(job, "started_at") for job in jobs)
    return SweepRun(execution, how, ended - submitted, started - submitted, ends)


@contextmanager
def backing_stores(deployed: bool, directory: Path, admin_dsn: str) -> Iterator[dict[str, str]]:
    """The environment that points the service at its database and broker: none for the embedded mode's
    SQLite files, a private PostgreSQL database and `redis-server` for the deployed one."""
    if not deployed:
        yield {}
        return
    with private_postgres(admin_dsn, "sweep") as database_url, private_redis(directory) as broker_url:
        yield {"DATABASE_URL": database_url, "BROKER_URL": broker_url}


@contextmanager
def started_service(arguments: argparse.Namespace, label: str) -> Iterator[httpx.Client]:
    """A fresh service (in a temporary directory, on fresh backing stores), warmed up; its client."""
    with tempfile.TemporaryDirectory(prefix=f"bnlab-sweep-{label}-") as scratch:
        directory = Path(scratch)
        with (
            backing_stores(arguments.deployed, directory, arguments.admin_dsn) as environment,
            embedded_service(directory, environment) as client,
        ):
            yield client


def timed_run(execution: str, arguments: argparse.Namespace, shared: httpx.Client | None) -> SweepRun:
    """One sweep, on the `shared` service or (None) on a service started for this run alone."""
    if shared is not None:
        return run_sweep(shared, execution, arguments.steps)
    with started_service(arguments, execution) as client:
        return run_sweep(client, execution, arguments.steps)


def check_agreement(runs: list[SweepRun]) -> str:
    """A line saying how the jobs ended, once every run is known to end each job as the first run did."""
    reference = runs[0]
    largest_difference = 0.0
    for run in runs[1:]:
        for point, expected in reference.jobs.items():
            got = run.jobs[point]
            same_end = (got.status, got.diverged_at_step) == (expected.status, expected.diverged_at_step)
            if expected.final_val_loss is not None and got.final_val_loss is not None:
                difference = abs(expected.final_val_loss - got.final_val_loss)
                largest_difference = max(largest_difference, difference)
                same_end = same_end and difference <= LOSS_TOLERANCE
            if not same_end:
                raise SystemExit(
                    f"learning rate {point[0]}, seed {point[1]}: the first {reference.execution} run ended "
                    f"{expected}, a {run.execution} run {got}"
                )
    diverged = sum(end.status == "diverged" for end in reference.jobs.values())
    return (
        f"every run: {len(reference.jobs) - diverged} succeeded, {diverged} diverged, the same jobs alike; "
        f"final val losses within {LOSS_TOLERANCE:g} (largest difference {largest_difference:.1e})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2, help="runs of each mode, alternating")
    parser.add_argument("--steps", type=int, default=2000, help="training steps of each job")
    parser.add_argument(
        "--deployed", action="store_true", help="PostgreSQL + a private redis-server instead of SQLite"
    )
    parser.add_argument("--admin-dsn", default=ADMIN_DSN, help="where --deployed creates its databases")
    parser.add_argument(
        "--one-service",
        action="store_true",
        help="every run on one service started once (a quick check; the figures come from fresh services)",
    )
    arguments = parser.parse_args(argv)
    if arguments.deployed and shutil.which("redis-server") is None:
        parser.error("--deployed needs redis-server on the PATH")
    model_steps = len(LEARNING_RATES) * len(SEEDS) * arguments.steps
    stores = "PostgreSQL + Redis" if arguments.deployed else "SQLite + the SQLite broker"
    services = "one service for every run" if arguments.one_service else "a fresh service each run"
    print(
        f"{len(LEARNING_RATES) * len(SEEDS)} jobs x {arguments.steps} steps through the service ({stores}, "
        f"one worker, one torch thread, {services}); {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f}",
        flush=True,
    )
    runs: list[SweepRun] = []
    with contextlib.ExitStack() as stack:
        shared = stack.enter_context(started_service(arguments, "all")) if arguments.one_service else None
        for round_index in range(arguments.rounds):
            for execution in EXECUTIONS:
                run = timed_run(execution, arguments, shared)
                runs.append(run)
                print(
                    f"round {round_index + 1}: {execution:8s} ({run.how_executed}) {run.seconds:6.1f} s, "
                    f"{model_steps / run.seconds:6.0f} model-steps/s, first job started after "
                    f"{run.queued_seconds:.2f} s",
                    flush=True,
                )
    best: dict[str, float] = {}
    for execution in EXECUTIONS:
        seconds = [run.seconds for run in runs if run.execution == execution]
        best[execution], median = min(seconds), statistics.median(seconds)
        print(
            f"{execution:8s} POST to last job's end: best {best[execution]:6.1f} s, median {median:6.1f} s; "
            f"model-steps/s {model_steps / best[execution]:6.0f} (best), {model_steps / median:6.0f} (median)"
        )
    print(f"fused is {best['separate'] / best['fused']:.1f}x faster (best against best)")
    print(check_agreement(runs))
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
