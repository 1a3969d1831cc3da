"""Metric ingestion through the store into PostgreSQL: 10 jobs × 4 metrics × 50,000 steps, written in
batches the way a worker writes them, then once more (a redelivered job rewriting the same points).

    python benchmarks/ingest.py [--url postgresql://postgres@127.0.0.1:5432/postgres] [--batch-steps 5000]

Creates a scratch database next to the one in --url, migrates it, measures, drops it. Prints points/s.
Each write also recomputes the metric rollup's blocks it changed (`core.store.rollup`); the rewrite of
identical values changes none.
"""

from __future__ import annotations

import argparse
import math
import time

from service_harness import ADMIN_DSN, private_postgres

from core.db.migrate import upgrade_database
from core.results import METRIC_NAMES, MetricPoint
from core.spec import JobSpec
from core.store import Store

JOBS = 10
STEPS = 50_000


def _points(job_index: int, first_step: int, last_step: int) -> list[MetricPoint]:
    return [
        MetricPoint(name, step, math.sin(step * 1e-3 + job_index) + metric_index)
        for step in range(first_step, last_step)
        for metric_index, name in enumerate(METRIC_NAMES)
    ]


def _ingest(store: Store, job_ids: list[str], batch_steps: int) -> float:
    """Seconds to write every job's points, batch by batch (points are built outside the clock)."""
    elapsed = 0.0
    for job_index, job_id in enumerate(job_ids):
        for first_step in range(0, STEPS, batch_steps):
            batch = _points(job_index, first_step, min(first_step + batch_steps, STEPS))
            started = time.perf_counter()
            store.write_metrics(job_id, batch)
            elapsed += time.perf_counter() - started
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=ADMIN_DSN)
    parser.add_argument("--batch-steps", type=int, default=5000, help="steps per write (× 4 metrics)")
    arguments = parser.parse_args()

    with private_postgres(arguments.url, "ingest") as url:
        store = Store(url)
        try:
            upgrade_database(url)
            spec = JobSpec.model_validate(
                {"architecture": {"kind": "mlp"}, "batch_norm": True, "learning_rate": 0.1, "dropout": 0.0}
            )
            job_ids = [store.create_job(spec).id for _ in range(JOBS)]
            total = JOBS * STEPS * len(METRIC_NAMES)
            first = _ingest(store, job_ids, arguments.batch_steps)
            rewrite = _ingest(store, job_ids, arguments.batch_steps)
            stored = sum(len(steps) for steps, _ in store.read_metrics(job_ids[0], None, 10**6).values())
            assert stored == STEPS * len(METRIC_NAMES), "the rewrite must not duplicate points"
            print(f"{total:,} points in batches of {arguments.batch_steps * len(METRIC_NAMES):,}")
            print(f"first write: {first:.2f} s, {total / first:,.0f} points/s")
            print(f"rewrite:     {rewrite:.2f} s, {total / rewrite:,.0f} points/s")
        finally:
            store.dispose()


if __name__ == "__main__":
    main()
