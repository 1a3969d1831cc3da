"""The service part of `benchmarks/gpu_check.py`: bnlab's embedded mode end to end on the machine's device.

Starts `python -m api.embedded` on a free port with its state (SQLite database, SQLite broker, log) in a
fresh temporary folder (`service_harness.embedded_service`, which waits until its worker has trained a
warm-up job), checks `/readyz` and that `GET /v1/workers` lists a live worker (and prints its device), then
times, from just before each POST to the last `finished_at` (the service runs on this machine, so its clock
is this script's):
- one job of the paper's digits MLP with BN (3x100 sigmoid, batch 60, SGD, 2,000 steps) on the device;
- a sweep of it, 4 learning rates x N/4 seeds (N = 1,024 by default), `execution: fused`: the seconds, the
  model-steps/s, and the sizes of the fused groups the service chose. Goal on one H200: N = 1,024 in 15 s.
Then stops the service. Needs the API's dependencies (FastAPI, Celery, SQLAlchemy, ...): without them it
says so in one line and is skipped.
"""

from __future__ import annotations

import importlib.util
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

SWEEP_GOAL_SECONDS = 15.0  # 1,024 paper MLPs x 2,000 steps on one H200, POST to last result
STEPS = 2000
SWEEP_LEARNING_RATES = 4
POLL_SECONDS = 0.2
TIMEOUT_SECONDS = 900.0
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "diverged", "cancelled"})
SERVICE_MODULES = ("fastapi", "uvicorn", "sqlalchemy", "celery", "kombu", "httpx", "psycopg", "redis")


def missing_service_modules() -> list[str]:
    """The API's dependencies this Python cannot import (the service part needs them all)."""
    return [module for module in SERVICE_MODULES if importlib.util.find_spec(module) is None]


def sweep_size_error(size: int) -> str | None:
    """Why `size` cannot be the sweep's size (4 learning rates x size/4 seeds, 256 seeds at most), or None."""
    if size < SWEEP_LEARNING_RATES or size % SWEEP_LEARNING_RATES:
        return f"--sweep-size must be a positive multiple of {SWEEP_LEARNING_RATES}, got {size}"
    if size // SWEEP_LEARNING_RATES > 256:
        return f"--sweep-size is at most {SWEEP_LEARNING_RATES * 256} (a sweep takes 256 seeds at most)"
    return None


def finished_at(job: dict[str, Any]) -> float:
    return datetime.fromisoformat(job["finished_at"]).timestamp()


def wait_for_live_worker(client: httpx.Client) -> dict[str, Any]:
    """The first live worker `GET /v1/workers` lists, once `/readyz` answers 200."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            workers = client.get("/v1/workers").raise_for_status().json()["items"]
            live = [worker for worker in workers if worker["alive"]]
            if live:
                return dict(live[0])
        time.sleep(POLL_SECONDS)
    raise SystemExit("service: no live worker in GET /v1/workers within 60 s")


def describe_device(device: dict[str, Any]) -> str:
    if device["kind"] == "cuda":
        memory = f", {device['memory_mb'] / 1024:.0f} GiB" if device["memory_mb"] else ""
        return f"{device['count']} x {device['name']}{memory}"
    return f"{device['name']} ({device['count']} logical CPUs, {device['threads']} torch thread(s))"


def time_one_job(client: httpx.Client, spec: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    """Seconds from the POST to the job's end, and the job as the service last showed it."""
    submitted = time.time()
    created = client.post("/v1/jobs", json=spec).raise_for_status().json()
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{created['id']}").raise_for_status().json()
        if job["status"] in TERMINAL_STATUSES:
            return finished_at(job) - submitted, job
        if time.monotonic() > deadline:
            raise SystemExit(
                f"service: the job did not end in {TIMEOUT_SECONDS:.0f} s: {job.get('waiting_for')}"
            )
        time.sleep(POLL_SECONDS)


def sweep_jobs(client: httpx.Client, sweep_id: str) -> list[dict[str, Any]]:
    """Every job of the sweep, page after page."""
    jobs: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"sweep_id": sweep_id, "limit": 200}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/jobs", params=params).raise_for_status().json()
        jobs.extend(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return jobs


def time_sweep(
    client: httpx.Client, request: dict[str, Any]
) -> tuple[float, dict[str, Any], list[dict[str, Any]]]:
    """Seconds from the POST to the sweep's last job's end; the sweep and its jobs at the end."""
    submitted = time.time()
    created = client.post("/v1/sweeps", json=request).raise_for_status().json()
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while True:
        sweep: dict[str, Any] = client.get(f"/v1/sweeps/{created['id']}").raise_for_status().json()
        if sweep["done"] == sweep["size"]:
            break
        if time.monotonic() > deadline:
            raise SystemExit(
                f"service: the sweep did not end in {TIMEOUT_SECONDS:.0f} s ({sweep['done']} done)"
            )
        time.sleep(POLL_SECONDS)
    jobs = sweep_jobs(client, created["id"])
    return max(finished_at(job) for job in jobs) - submitted, sweep, jobs


def run_service_check(device: str, sweep_size: int) -> int:
    """The service part; 0 when every job ended as trained (succeeded or diverged), else 1."""
    missing = missing_service_modules()
    if missing:
        print(
            f"service part skipped: the API's dependencies are missing ({', '.join(missing)}); `make install`"
        )
        return 0
    from paper_sweep import LEARNING_RATES, paper_mlp_spec
    from service_harness import embedded_service

    environment = {"BNLAB_MAX_SWEEP_SIZE": str(max(256, sweep_size))}
    with tempfile.TemporaryDirectory(prefix="bnlab-gpu-check-") as scratch:
        print("service: starting the embedded mode (python -m api.embedded) ...", flush=True)
        started = time.perf_counter()
        with embedded_service(Path(scratch), environment) as client:
            worker = wait_for_live_worker(client)
            print(
                f"service: ready in {time.perf_counter() - started:.1f} s; worker {worker['name']} on "
                f"{', '.join(worker['queues'])}: {describe_device(worker['device'])}",
                flush=True,
            )
            seconds, single = time_one_job(client, paper_mlp_spec(LEARNING_RATES[1], 0, STEPS, device))
            print(
                f"service: one {device} job ({STEPS:,} steps) {single['status']} in {seconds:.2f} s from "
                f"POST to its end ({STEPS / seconds:,.0f} steps/s)",
                flush=True,
            )
            request = {
                "name": f"gpu-check-{sweep_size}",
                "base": paper_mlp_spec(LEARNING_RATES[0], 0, STEPS, device),
                "grid": {"learning_rate": list(LEARNING_RATES)},
                "seeds": list(range(sweep_size // len(LEARNING_RATES))),
                "execution": "fused",
            }
            seconds, sweep, jobs = time_sweep(client, request)
            groups = Counter(group["size"] for group in sweep["execution"]["fused_groups"])
            chosen = ", ".join(f"{count} x {size}" for size, count in sorted(groups.items(), reverse=True))
            statuses = Counter(job["status"] for job in jobs)
            goal = f"goal <= {SWEEP_GOAL_SECONDS:.0f} s for 1,024 on one H200"
            if device.startswith("cuda") and sweep_size == 1024:
                goal += ": met" if seconds <= SWEEP_GOAL_SECONDS else ": NOT met"
            print(
                f"service: {sweep_size:,}-job fused sweep ({STEPS:,} steps each) in {seconds:.2f} s from "
                f"POST to the last result ({sweep_size * STEPS / seconds:,.0f} model-steps/s); {goal}\n"
                f"service: fused groups chosen: {chosen or 'none'} "
                f"({sweep['execution']['used']}: {sweep['execution']['note']}); jobs: {dict(statuses)}",
                flush=True,
            )
        print("service: stopped", flush=True)
    trained = {"succeeded", "diverged"}
    return 0 if single["status"] in trained and set(statuses) <= trained else 1
