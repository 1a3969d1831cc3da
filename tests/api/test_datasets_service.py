"""An uploaded dataset end to end against the real service (API + worker, both modes): upload it, train a
job on it, then a fused sweep on it; the jobs learn what the data holds."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.api.test_datasets import blobs, npz
from tests.fixtures.service import TINY_SPEC, RunningService

pytestmark = pytest.mark.service

SWEEP_TIMEOUT_SECONDS = 120.0


def test_upload_then_train_a_job_then_a_fused_sweep_on_it(running_service: RunningService) -> None:
    service = running_service
    name = f"blobs-{uuid.uuid4().hex[:8]}"  # the service is shared by the session's tests
    # Three well separated classes: a small net gets most of the validation split right.
    arrays = blobs(examples=300, features=4, classes=3)
    arrays["x"] = arrays["x"] + 3 * arrays["y"][:, None]
    uploaded = httpx.post(
        f"{service.url}/v1/datasets",
        data={"name": name},
        files={"file": ("blobs.npz", npz(**arrays))},
        timeout=30,
    )
    assert uploaded.status_code == 201, uploaded.text
    assert (uploaded.json()["train_size"], uploaded.json()["num_classes"]) == (300, 3)
    spec = {**TINY_SPEC, "dataset": f"user:{name}", "steps": 60, "batch_size": 32, "learning_rate": 0.2}

    job = service.wait_until_finished(service.submit(spec), timeout=90)

    assert job["status"] == "succeeded", job["error"]
    assert job["summary"]["final_val_accuracy"] >= 0.8

    sweep = httpx.post(
        f"{service.url}/v1/sweeps",
        json={
            "name": name,
            "base": spec,
            "grid": {"learning_rate": [0.1, 0.3]},
            "seeds": [0, 1],
            "execution": "fused",
        },
        timeout=30,
    )
    assert sweep.status_code == 201, sweep.text
    finished = [
        service.wait_until_finished(job_id, timeout=SWEEP_TIMEOUT_SECONDS)
        for job_id in sweep.json()["job_ids"]
    ]
    read = httpx.get(f"{service.url}/v1/sweeps/{sweep.json()['id']}", timeout=30).json()

    assert read["execution"]["used"] == "fused" and read["execution"]["fused_groups"]
    assert [job["status"] for job in finished] == ["succeeded"] * 4
    assert all(job["execution"]["mode"] == "fused" for job in finished)
    assert all(job["summary"]["final_val_accuracy"] >= 0.8 for job in finished)
    # Its jobs have finished: the dataset may go now.
    assert httpx.delete(f"{service.url}/v1/datasets/{name}", timeout=30).status_code == 204
