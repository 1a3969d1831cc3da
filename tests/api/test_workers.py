"""`GET /v1/workers` lists the registered workers (live first, gone ones on request), and a queued job that
no live worker can take says why in its view (`waiting_for`), from the POST's answer on. Both databases."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from fastapi.testclient import TestClient

from api.jobs.waiting import LiveQueues
from core.store import Store, WorkerTraining
from core.store.workers import new_worker_id
from tests.api.conftest import TINY_SPEC

GPU = {"kind": "cuda", "name": "NVIDIA H200", "count": 1, "memory_mb": 143771, "threads": 1}
CPU = {"kind": "cpu", "name": "AMD EPYC", "count": 2, "memory_mb": 8000, "threads": 1}


def _store(client: TestClient) -> Store:
    store: Store = client.app.state.store  # type: ignore[attr-defined]
    return store


def _register(client: TestClient, host: str, queues: list[str], device: dict[str, Any]) -> str:
    worker_id = new_worker_id()
    _store(client).register_worker(worker_id, f"celery@{host}", host, 7, queues, device)
    return worker_id


def test_workers_are_listed_with_what_they_train_and_gone_ones_only_on_request(client: TestClient) -> None:
    assert client.get("/v1/workers").json() == {"items": []}
    gpu = _register(client, "gpu-node", ["default", "gpu"], GPU)
    stopped = _register(client, "cpu-node", ["cpu", "default"], CPU)
    _store(client).worker_stopped(stopped)
    _store(client).worker_heartbeat(gpu, WorkerTraining(["a" * 32], None))

    [listed] = client.get("/v1/workers").json()["items"]
    assert (listed["id"], listed["host"], listed["queues"], listed["device"]) == (
        gpu,
        "gpu-node",
        ["default", "gpu"],
        GPU,
    )
    assert (listed["training"], listed["alive"]) == ({"job_ids": ["a" * 32], "group_id": None}, True)
    assert {"started_at", "last_seen", "name", "pid"} <= set(listed)

    everyone = client.get("/v1/workers", params={"include": "gone"}).json()["items"]
    assert [(worker["id"], worker["alive"]) for worker in everyone] == [(gpu, True), (stopped, False)]


def test_an_unknown_include_is_a_422_naming_it(client: TestClient) -> None:
    response = client.get("/v1/workers", params={"include": "everything"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "include"]


def test_a_job_no_live_worker_can_take_says_why_until_one_comes(client: TestClient) -> None:
    submitted = client.post("/v1/jobs", json={**TINY_SPEC, "device": "cuda"})
    assert submitted.status_code == 201
    job = submitted.json()
    assert job["status"] == "queued"
    assert job["waiting_for"].startswith(
        "no live worker consumes the gpu queue; start one on a machine with a GPU with "
    )
    assert "-Q default,gpu" in job["waiting_for"]

    cpu_job = client.post("/v1/jobs", json=TINY_SPEC).json()
    assert "the cpu queue" in cpu_job["waiting_for"]

    _register(client, "cpu-node", ["cpu", "default"], CPU)
    assert client.get(f"/v1/jobs/{cpu_job['id']}").json()["waiting_for"] is None
    assert "the gpu queue" in client.get(f"/v1/jobs/{job['id']}").json()["waiting_for"]
    assert client.post("/v1/jobs", json={**TINY_SPEC, "device": "auto"}).json()["waiting_for"] is None

    listed = {item["id"]: item["waiting_for"] for item in client.get("/v1/jobs").json()["items"]}
    assert listed[cpu_job["id"]] is None and "the gpu queue" in listed[job["id"]]

    _register(client, "gpu-node", ["default", "gpu"], GPU)
    assert client.get(f"/v1/jobs/{job['id']}").json()["waiting_for"] is None


def test_a_job_that_is_not_queued_waits_for_nothing(client: TestClient) -> None:
    job = client.post("/v1/jobs", json={**TINY_SPEC, "device": "cuda"}).json()
    cancelled = client.post(f"/v1/jobs/{job['id']}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["waiting_for"] is None
    assert client.get(f"/v1/jobs/{job['id']}").json()["waiting_for"] is None


def test_the_submit_path_reads_the_live_workers_once_a_second_and_never_misses_a_new_one(
    client: TestClient,
) -> None:
    store = _store(client)
    reads: list[float] = []
    now = [100.0]
    original = store.live_worker_devices

    def counted(alive_seconds: float) -> list[tuple[list[str], dict[str, Any]]]:
        reads.append(now[0])
        return original(alive_seconds)

    live_queues = LiveQueues(store, 30.0, clock=lambda: now[0])
    live_queues.store = cast(Any, SimpleNamespace(live_worker_devices=counted))
    assert "the cpu queue" in (live_queues.waiting_for(["cpu"])[0] or "")
    _register(client, "cpu-node", ["cpu", "default"], CPU)
    assert live_queues.waiting_for(["cpu", "auto"]) == [None, None]  # a worker that came is seen at once
    assert len(reads) == 2
    now[0] += 0.5
    assert live_queues.waiting_for(["cpu"] * 3) == [None] * 3  # served from the last read
    assert len(reads) == 2
    cuda = live_queues.waiting_for(["cpu", "cuda"])  # a queue without a worker is read fresh, once
    assert cuda[0] is None and "the gpu queue" in (cuda[1] or "") and len(reads) == 3
    now[0] += 1.0
    assert live_queues.waiting_for(["cpu"]) == [None] and len(reads) == 4  # older than a second: read again
