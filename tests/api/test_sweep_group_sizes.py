"""A sweep's fused groups are sized for the device that will train them, as the live workers say it:
`auto` groups are GPU-sized while a live worker on the default queue has a GPU, CPU-sized otherwise, and a
group too big for the smallest such GPU's memory is split. Both databases; workers registered in the store
as a worker process registers itself."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from core.group_sizes import models_fitting
from core.spec import JobSpec
from core.store import Store
from core.store.workers import new_worker_id
from tests.api.conftest import settings_for
from tests.api.recorded_runs import BASE_SPEC

CPU = {"kind": "cpu", "name": "AMD EPYC", "count": 2, "memory_mb": 8000, "threads": 1}
SEEDS = list(range(8))


@pytest.fixture
def sized_client(migrated_database_url: str, broker_url: str) -> Iterator[TestClient]:
    app = create_app(
        settings_for(migrated_database_url, broker_url, max_fused_group_size=2, max_fused_gpu_group_size=8)
    )
    with TestClient(app) as client:
        yield client
    app.state.store.dispose()


def group_sizes(client: TestClient, base: dict[str, Any]) -> list[int]:
    created = client.post("/v1/sweeps", json={"base": base, "grid": {}, "seeds": SEEDS})
    assert created.status_code == 201, created.text
    execution = client.get(f"/v1/sweeps/{created.json()['id']}").json()["execution"]
    return [group["size"] for group in execution["fused_groups"]]


def register(client: TestClient, queues: list[str], device: dict[str, Any]) -> str:
    store: Store = client.app.state.store  # type: ignore[attr-defined]
    worker_id = new_worker_id()
    store.register_worker(worker_id, "celery@node", "node", 1, queues, device)
    return worker_id


def test_auto_groups_follow_the_live_workers_devices(sized_client: TestClient) -> None:
    auto = {**BASE_SPEC, "device": "auto"}
    assert group_sizes(sized_client, auto) == [2, 2, 2, 2]  # nobody has a GPU: the CPU size
    assert group_sizes(sized_client, {**BASE_SPEC, "device": "cuda"}) == [8]  # cuda specs: the GPU size

    register(sized_client, ["cpu", "default"], CPU)
    register(sized_client, ["gpu"], {**CPU, "kind": "cuda", "name": "GPU", "memory_mb": 80000})
    assert group_sizes(sized_client, auto) == [2, 2, 2, 2]  # the GPU worker does not take auto jobs

    gpu_on_default = register(sized_client, ["default", "gpu"], {**CPU, "kind": "cuda", "memory_mb": 80000})
    assert group_sizes(sized_client, auto) == [8]
    assert group_sizes(sized_client, {**BASE_SPEC, "device": "cpu"}) == [2, 2, 2, 2]

    sized_client.app.state.store.worker_stopped(gpu_on_default)  # type: ignore[attr-defined]
    assert group_sizes(sized_client, auto) == [2, 2, 2, 2]


def test_a_group_too_big_for_the_gpus_memory_is_split(sized_client: TestClient) -> None:
    big = {**BASE_SPEC, "architecture": {"kind": "mlp", "hidden": [2048, 2048, 2048]}, "batch_size": 512}
    big |= {"optimizer": "adam", "device": "cuda", "telemetry_every": 0}
    # A card on which three of these models fit, and not four.
    memory_mb = next(
        mb for mb in range(2000, 20000, 10) if models_fitting(JobSpec.model_validate(big), mb) == 3
    )
    register(sized_client, ["default", "gpu"], {**CPU, "kind": "cuda", "memory_mb": memory_mb})
    assert group_sizes(sized_client, big) == [3, 3, 2]
