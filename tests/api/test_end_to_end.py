"""Through HTTP to a real Celery worker process and back: POST a tiny job, it trains and succeeds, its
metrics and telemetry are served — deployed (PostgreSQL + Redis) and embedded (SQLite + SQLAlchemy
transport)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from core.results import METRIC_NAMES
from tests.api.conftest import TINY_SPEC
from tests.fixtures.worker import RunningWorker

pytestmark = pytest.mark.service


@pytest.fixture
def worker_client(running_worker: RunningWorker) -> Iterator[TestClient]:
    app = create_app(running_worker.settings)
    with TestClient(app) as client:
        yield client
    app.state.store.dispose()


def wait_until_finished(client: TestClient, job_id: str, worker: RunningWorker) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["finished_at"] is not None:
            return job
        if time.monotonic() > deadline:
            pytest.fail(f"job still {job['status']} after 60 s; worker log:\n{worker.log()[-3000:]}")
        time.sleep(0.1)


def test_a_posted_job_trains_on_a_real_worker_and_its_results_are_served(
    worker_client: TestClient, running_worker: RunningWorker
) -> None:
    submitted = worker_client.post("/v1/jobs", json=TINY_SPEC)
    assert submitted.status_code == 201
    job_id = submitted.json()["id"]

    job = wait_until_finished(worker_client, job_id, running_worker)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 1 and job["device"] == "cpu" and job["error"] is None
    assert job["progress"] == {"step": TINY_SPEC["steps"], "steps": TINY_SPEC["steps"]}
    summary = job["summary"]
    assert 0.0 <= summary["final_val_accuracy"] <= summary["best_val_accuracy"] <= 1.0
    assert summary["steps_per_second"] > 0

    series = worker_client.get(f"/v1/jobs/{job_id}/metrics").json()["series"]
    assert set(series) == set(METRIC_NAMES)
    evaluated_steps = list(range(TINY_SPEC["eval_every"], TINY_SPEC["steps"] + 1, TINY_SPEC["eval_every"]))
    assert series["val_accuracy"]["steps"][-len(evaluated_steps) :] == evaluated_steps
    assert series["val_accuracy"]["values"][-1] == summary["final_val_accuracy"]
    assert max(series["val_accuracy"]["values"]) == summary["best_val_accuracy"]

    layers = worker_client.get(f"/v1/jobs/{job_id}/telemetry").json()["layers"]
    assert [layer["layer"] for layer in layers] == [0]  # one hidden layer
    steps = layers[0]["steps"]
    assert steps == sorted(steps) and steps[-1] <= TINY_SPEC["steps"] and len(steps) >= 3
    for name in ("unit_p15", "p15", "p50", "p85", "mean", "std", "saturated_fraction", "grad_norm"):
        assert len(layers[0][name]) == len(steps)
    assert all(low <= high for low, high in zip(layers[0]["p15"], layers[0]["p85"], strict=True))

    listed = worker_client.get("/v1/jobs", params={"status": "succeeded"}).json()["items"]
    assert job_id in [item["id"] for item in listed]
    assert worker_client.post(f"/v1/jobs/{job_id}/cancel").status_code == 409
