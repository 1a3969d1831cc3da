"""How long `GET /v1/compare` takes on long runs: `python benchmarks/compare_latency.py`.

Stores 10 finished jobs × 50,000 evaluated steps × 4 metrics (2 M points) in a fresh PostgreSQL database,
then times the comparison of all 10 jobs' `val_accuracy` downsampled to 1,000 points a series, with a
target every run crosses mid-way — through the real app (routing, store, SQL downsampling from the metric
rollup, exact target crossings, JSON), in process. Prints p50/p95/max over the timed requests, cold (every
series read and downsampled by the database) and warm (finished jobs' series from the API's cache); the
goal is p95 < 200 ms cold. The database is dropped afterwards. Machine load from other processes shows in
the figures.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient
from service_harness import ADMIN_DSN, private_postgres

from api.main import create_app
from core.db.migrate import upgrade_database
from core.results import METRIC_NAMES, MetricPoint, Summary
from core.settings import Settings
from core.spec import JobSpec
from core.store import Store

JOBS = 10
STEPS = 50_000
MAX_POINTS = 1_000
TARGET = 0.9
WRITE_BATCH = 50_000  # points per write: a worker writes far smaller batches, but loading must be quick


def synthetic_curve(metric: str, seed: int) -> list[float]:
    """A noisy learning curve: accuracies rise towards ~0.95 (crossing 0.9 part-way), losses fall."""
    generator = random.Random(seed)
    rate = 3.0 + seed * 0.3
    curve = []
    for step in range(STEPS):
        progress = 1.0 - math.exp(-rate * step / STEPS)
        noise = generator.gauss(0.0, 0.01)
        curve.append(
            0.1 + 0.85 * progress + noise if "accuracy" in metric else 2.3 * (1.0 - progress) + 0.05 + noise
        )
    return curve


def load_jobs(store: Store) -> list[str]:
    spec = JobSpec.model_validate(
        {
            "architecture": {"kind": "mlp", "hidden": [100, 100, 100], "activation": "sigmoid"},
            "batch_norm": True,
            "learning_rate": 0.1,
            "dropout": 0.0,
            "steps": STEPS,
            "eval_every": 1,
            "target_accuracy": TARGET,
        }
    )
    job_ids = []
    for index in range(JOBS):
        job = store.create_job(spec.model_copy(update={"seed": index}))
        owner = f"benchmark-{index}"
        assert store.acquire_lease(job.id, owner, lease_seconds=3600).acquired
        points = [
            MetricPoint(metric, step, value)
            for metric in METRIC_NAMES
            for step, value in enumerate(synthetic_curve(metric, index))
        ]
        for start in range(0, len(points), WRITE_BATCH):
            store.write_metrics(job.id, points[start : start + WRITE_BATCH])
        store.set_progress(job.id, STEPS, STEPS, 1000.0)
        assert store.finish_job(job.id, owner, "succeeded", summary=Summary(steps_per_second=1000.0))
        job_ids.append(job.id)
        print(f"  job {index + 1}/{JOBS}: {len(points):,} points stored", flush=True)
    return job_ids


def time_compare(client: TestClient, job_ids: list[str], requests: int, cold: bool) -> list[float]:
    """Latencies of `requests` comparisons. Cold: each asks for a point budget not asked before, so no
    series comes from the API's cache of finished jobs' series; warm: the same comparison again."""
    params: dict[str, object] = {"ids": job_ids, "metric": "val_accuracy", "target": TARGET}
    client.get("/v1/compare", params={**params, "max_points": 10}).raise_for_status()  # pool, name ids
    latencies = []
    for index in range(requests):
        max_points = MAX_POINTS - index if cold else MAX_POINTS
        started = time.perf_counter()
        response = client.get("/v1/compare", params={**params, "max_points": max_points})
        latencies.append(time.perf_counter() - started)
        response.raise_for_status()
        body = response.json()
        assert all(len(series["steps"]) <= max_points for series in body["series"].values())
        assert all(row["steps_to_target"] is not None for row in body["jobs"])
    return latencies


def report(label: str, latencies: list[float]) -> None:
    milliseconds = [latency * 1000 for latency in latencies]
    print(
        f"{label:>5}: p50 {statistics.median(milliseconds):4.0f} ms, "
        f"p95 {percentile(milliseconds, 0.95):4.0f} ms, max {max(milliseconds):4.0f} ms"
    )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--admin-dsn", default=ADMIN_DSN)
    parser.add_argument("--requests", type=int, default=50)
    arguments = parser.parse_args()

    with private_postgres(arguments.admin_dsn, "compare") as url:
        upgrade_database(url)
        store = Store(url)
        print(
            f"storing {JOBS} jobs × {STEPS:,} steps × {len(METRIC_NAMES)} metrics in PostgreSQL…", flush=True
        )
        started = time.perf_counter()
        job_ids = load_jobs(store)
        with store.engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")  # as autovacuum would after a bulk load
        print(f"stored in {time.perf_counter() - started:.1f} s")
        store.dispose()

        with tempfile.TemporaryDirectory() as scratch:
            settings = Settings(
                _env_file=None,
                database_url=url,
                broker_url=f"sqla+sqlite:///{Path(scratch) / 'broker.db'}",
                republish_seconds=3600.0,
            )
            app = create_app(settings)
            with TestClient(app) as client:
                cold = time_compare(client, job_ids, arguments.requests, cold=True)
                warm = time_compare(client, job_ids, arguments.requests, cold=False)
            app.state.store.dispose()
        print(
            f"GET /v1/compare over {JOBS} jobs, ~{MAX_POINTS:,} points a series, "
            f"{arguments.requests} requests each (goal: p95 < 200 ms):"
        )
        report("cold", cold)
        report("warm", warm)


if __name__ == "__main__":
    main()
