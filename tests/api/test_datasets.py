"""`/v1/datasets` through the API: upload an NPZ or a CSV, list, delete; every bad upload is a 422 naming
the field and what is wrong, and stores nothing; a spec naming an unknown `user:` dataset is a 422; a
dataset a queued job needs cannot be deleted."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.main import create_app
from core.db.engine import create_database_engine
from tests.api.conftest import TINY_SPEC, settings_for

CAPS = {"max_dataset_bytes": 200_000, "max_dataset_examples": 500, "max_dataset_features": 64}


@pytest.fixture
def client(migrated_database_url: str, broker_url: str) -> Iterator[TestClient]:
    app = create_app(settings_for(migrated_database_url, broker_url, **CAPS))
    with TestClient(app) as test_client:
        yield test_client
    app.state.store.dispose()


def npz(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def blobs(examples: int = 120, features: int = 6, classes: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    generator = np.random.default_rng(seed)
    labels = np.arange(examples) % classes
    inputs = generator.normal(size=(examples, features)) + labels[:, None]
    return {"x": inputs, "y": labels}


def upload(client: TestClient, name: str, content: bytes, file_name: str = "data.npz", **extra: Any) -> Any:
    files: dict[str, Any] = {"file": (file_name, content)}
    if "validation" in extra:
        files["validation_file"] = ("val" + file_name[-4:], extra.pop("validation"))
    return client.post("/v1/datasets", data={"name": name, **extra}, files=files)


def stored_rows(client: TestClient) -> tuple[int, int]:
    engine = create_database_engine(client.app.state.settings.database_url)  # type: ignore[attr-defined]
    try:
        with engine.connect() as connection:
            return (
                connection.scalar(sa.text("SELECT count(*) FROM dataset")) or 0,
                connection.scalar(sa.text("SELECT count(*) FROM dataset_blob")) or 0,
            )
    finally:
        engine.dispose()


def test_an_npz_upload_is_described_listed_and_usable_by_name(client: TestClient) -> None:
    response = upload(client, "blobs", npz(**blobs()))

    assert response.status_code == 201, response.text
    dataset = response.json()
    assert {
        key: dataset[key] for key in ("name", "train_size", "val_size", "input_shape", "num_classes")
    } == {
        "name": "blobs",
        "train_size": 120,
        "val_size": 0,
        "input_shape": [6],
        "num_classes": 3,
    }
    assert len(dataset["sha256"]) == 64
    assert [item["name"] for item in client.get("/v1/datasets").json()["items"]] == ["blobs"]
    # The same arrays under another name are stored once.
    again = upload(client, "blobs-again", npz(**blobs()))
    assert again.json()["sha256"] == dataset["sha256"] and stored_rows(client) == (2, 1)
    assert upload(client, "blobs", npz(**blobs())).status_code == 409

    job = client.post("/v1/jobs", json={**TINY_SPEC, "dataset": "user:blobs"})
    assert job.status_code == 201, job.text
    assert job.json()["spec"]["dataset"] == "user:blobs"


def test_a_csv_with_its_validation_split(client: TestClient) -> None:
    header = "f1,f2,class\n"
    train = header + "".join(f"{i % 7},{i % 5},{i % 2}\n" for i in range(40))
    validation = header + "".join(f"{i % 3},{i % 4},{i % 2}\n" for i in range(10))

    response = upload(
        client, "pairs", train.encode(), "train.csv", validation=validation.encode(), label_column="class"
    )

    assert response.status_code == 201, response.text
    assert {
        key: response.json()[key] for key in ("train_size", "val_size", "input_shape", "num_classes")
    } == {
        "train_size": 40,
        "val_size": 10,
        "input_shape": [2],
        "num_classes": 2,
    }


def _bad_uploads() -> list[tuple[str, bytes, str, str, str]]:
    good = blobs()
    nan_inputs = good["x"].copy()
    nan_inputs[3, 2] = np.nan
    whole = npz(**good)
    return [
        ("wrong shapes", npz(x=good["x"], y=good["y"][:-1]), "data.npz", "file", "one label per example"),
        ("x of rank 5", npz(x=np.zeros((8, 1, 1, 1, 2)), y=np.zeros(8)), "data.npz", "file", "expected (N"),
        ("NaN", npz(x=nan_inputs, y=good["y"]), "data.npz", "file", "NaN"),
        ("labels out of range", npz(x=good["x"], y=good["y"] - 1), "data.npz", "file", "labels must be"),
        ("labels not whole", npz(x=good["x"], y=good["y"] + 0.5), "data.npz", "file", "not whole numbers"),
        ("strings", npz(x=np.array([["a"]] * 8), y=np.zeros(8)), "data.npz", "file", "x must hold numbers"),
        ("no y", npz(x=good["x"]), "data.npz", "file", "no array y"),
        ("too many examples", npz(**blobs(examples=501)), "data.npz", "file", "over the cap of 500"),
        ("too many features", npz(**blobs(features=65)), "data.npz", "file", "over the cap of 64"),
        ("over the byte cap", npz(**blobs(examples=500, features=60)), "data.npz", "file", "200000 bytes"),
        ("truncated", whole[: len(whole) // 2], "data.npz", "file", "truncated or damaged"),
        ("CSV without label", b"a,b\n1,2\n", "data.csv", "file", "no label column 'label'"),
        ("CSV with text", b"a,label\n1,0\nx,1\n", "data.csv", "file", "line 3"),
        ("one class", npz(x=good["x"], y=np.zeros(120)), "data.npz", "file", "two classes"),
    ]


@pytest.mark.parametrize(
    ("case", "content", "file_name", "field", "says"),
    _bad_uploads(),
    ids=[case[0] for case in _bad_uploads()],
)
def test_a_bad_upload_is_a_422_naming_what_is_wrong_and_stores_nothing(
    client: TestClient, case: str, content: bytes, file_name: str, field: str, says: str
) -> None:
    response = upload(client, "bad", content, file_name)

    assert response.status_code == 422, (case, response.text)
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", field] and says in error["msg"], (case, error)
    assert stored_rows(client) == (0, 0)
    assert client.get("/v1/datasets").json()["items"] == []


def test_a_validation_split_of_another_shape_and_a_bad_name_are_422(client: TestClient) -> None:
    mismatched = upload(client, "two", npz(**blobs()), validation=npz(**blobs(features=5)))
    assert mismatched.status_code == 422
    assert mismatched.json()["detail"][0]["loc"] == ["body", "validation_file"]
    named = upload(client, "Not A Name", npz(**blobs()))
    assert named.status_code == 422 and named.json()["detail"][0]["loc"] == ["body", "name"]
    assert stored_rows(client) == (0, 0)


def test_unknown_user_datasets_are_refused_at_submit(client: TestClient) -> None:
    job = client.post("/v1/jobs", json={**TINY_SPEC, "dataset": "user:nothing"})
    assert job.status_code == 422 and job.json()["detail"][0]["loc"] == ["body", "dataset"]
    assert "nothing" in job.json()["detail"][0]["msg"]
    sweep = client.post(
        "/v1/sweeps",
        json={"base": TINY_SPEC, "grid": {"dataset": ["digits", "user:nothing"]}, "seeds": [0]},
    )
    assert sweep.status_code == 422 and sweep.json()["detail"][0]["loc"] == ["body", "grid", "dataset"]
    cnn = {**TINY_SPEC, "architecture": {"kind": "cnn", "channels": [4]}}
    assert upload(client, "flat", npz(**blobs())).status_code == 201
    refused = client.post("/v1/jobs", json={**cnn, "dataset": "user:flat"})
    assert refused.status_code == 422 and "needs images" in refused.json()["detail"][0]["msg"]
    assert client.get("/v1/jobs").json()["items"] == []


def test_a_dataset_in_use_is_not_deleted_until_its_jobs_finish(client: TestClient) -> None:
    assert upload(client, "blobs", npz(**blobs())).status_code == 201
    job_id = client.post("/v1/jobs", json={**TINY_SPEC, "dataset": "user:blobs"}).json()["id"]

    refused = client.delete("/v1/datasets/blobs")
    assert refused.status_code == 409 and "queued or running" in refused.json()["detail"]

    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
    assert client.delete("/v1/datasets/blobs").status_code == 204
    assert stored_rows(client) == (0, 0)
    assert client.delete("/v1/datasets/blobs").status_code == 404
