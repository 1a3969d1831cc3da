"""`/v1/jobs` through the app on a migrated SQLite and PostgreSQL database: every route's answers,
success and error, as a client sees them. Data a worker would write is written through the store."""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.jobs.schemas import PAPER_DIGITS_SPEC
from core.results import METRIC_NAMES, MetricPoint, Summary, TelemetryRecord
from core.spec import JobSpec
from core.store import Store
from tests.api.conftest import SMALL_BODY_LIMIT, TINY_SPEC, submit

JOB_FIELDS = {
    "id", "status", "spec", "created_at", "started_at", "finished_at", "progress", "device", "attempts",
    "summary", "error", "sweep_id", "execution", "tags", "note", "archived", "waiting_for",
}  # fmt: skip
SUMMARY_FIELDS = {
    "final_val_accuracy", "best_val_accuracy", "final_train_loss", "steps_to_target", "seconds_to_target",
    "diverged_at_step", "steps_per_second",
}  # fmt: skip
JOB_ROUTES = ["/v1/jobs/{id}", "/v1/jobs/{id}/metrics", "/v1/jobs/{id}/telemetry"]


def start_running(store: Store, job_id: str) -> str:
    """Take the job's lease as a worker would; returns the lease owner."""
    owner = f"test-worker-{uuid.uuid4().hex[:6]}"
    assert store.acquire_lease(job_id, owner, lease_seconds=60).acquired
    return owner


def test_submit_answers_201_with_the_stored_job_in_the_documented_shape(
    client: TestClient, store: Store
) -> None:
    response = client.post("/v1/jobs", json=PAPER_DIGITS_SPEC)
    assert response.status_code == 201
    job = response.json()
    assert set(job) == JOB_FIELDS
    assert job["status"] == "queued" and job["attempts"] == 0 and job["summary"] is None
    assert job["execution"] == {"mode": "separate", "group_id": None, "group_size": None}
    assert uuid.UUID(job["id"]).hex == job["id"]
    assert JobSpec.model_validate(job["spec"]) == JobSpec.model_validate(PAPER_DIGITS_SPEC)
    stored = store.get_job(job["id"])
    assert stored is not None and stored.status == "queued"  # committed before the answer
    assert client.get(f"/v1/jobs/{job['id']}").json() == job


def test_submit_fills_in_the_documented_defaults(client: TestClient) -> None:
    minimal = {key: TINY_SPEC[key] for key in ("architecture", "batch_norm", "learning_rate", "dropout")}
    response = client.post("/v1/jobs", json=minimal)
    assert response.status_code == 201
    assert response.json()["spec"] == JobSpec.model_validate(minimal).model_dump(mode="json")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"learning_rate": 0}, "learning_rate"),
        ({"dropout": 1.0}, "dropout"),
        ({"batch_size": 1}, "batch_size"),
        ({"steps": 10, "eval_every": 20}, "eval_every"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"device": "tpu"}, "device"),
        ({"learning_rat": 0.1}, "learning_rat"),
        ({"architecture": {"kind": "mlp", "hidden": [10**6]}}, "architecture"),
    ],
)
def test_a_bad_spec_is_422_naming_the_field(client: TestClient, changes: dict[str, Any], field: str) -> None:
    response = client.post("/v1/jobs", json={**TINY_SPEC, **changes})
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert any(error["loc"][:2] == ["body", field] and error["msg"] for error in errors), errors
    assert client.get("/v1/jobs").json()["items"] == []  # nothing was stored


def test_a_missing_required_field_is_named(client: TestClient) -> None:
    body = {key: value for key, value in TINY_SPEC.items() if key != "learning_rate"}
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 422
    assert ["body", "learning_rate"] in [error["loc"] for error in response.json()["detail"]]


def test_a_body_that_is_not_json_is_422(client: TestClient) -> None:
    response = client.post("/v1/jobs", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_a_body_over_the_limit_is_413_with_or_without_content_length(client: TestClient) -> None:
    oversized = {**TINY_SPEC, "name": "x" * (SMALL_BODY_LIMIT + 1)}
    declared = client.post("/v1/jobs", json=oversized)
    assert declared.status_code == 413
    assert str(SMALL_BODY_LIMIT) in declared.json()["detail"]

    def chunks() -> Any:
        for _ in range(SMALL_BODY_LIMIT // 100 + 2):
            yield b" " * 100

    chunked = client.post("/v1/jobs", content=chunks(), headers={"content-type": "application/json"})
    assert chunked.status_code == 413
    assert client.get("/v1/jobs").json()["items"] == []


def test_a_chunked_body_under_the_limit_is_accepted(client: TestClient) -> None:
    body = json.dumps(TINY_SPEC).encode()
    response = client.post(
        "/v1/jobs", content=iter([body[:20], body[20:]]), headers={"content-type": "application/json"}
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("route", JOB_ROUTES)
@pytest.mark.parametrize("job_id", [uuid.uuid4().hex, "not-a-uuid", "1' OR '1'='1", "0" * 64])
def test_unknown_or_malformed_ids_are_404(client: TestClient, route: str, job_id: str) -> None:
    response = client.get(route.format(id=job_id))
    assert response.status_code == 404
    assert "not found" in response.json()["detail"]


def test_the_dashed_uuid_form_finds_the_same_job(client: TestClient) -> None:
    job = submit(client)
    assert client.get(f"/v1/jobs/{uuid.UUID(job['id'])}").json()["id"] == job["id"]


def test_listing_pages_newest_first_without_gaps_or_repeats(client: TestClient) -> None:
    submitted = [submit(client, name=f"job-{index}")["id"] for index in range(5)]
    seen: list[str] = []
    page_sizes: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/jobs", params=params).json()
        page_sizes.append(len(page["items"]))
        seen += [job["id"] for job in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert page_sizes == [2, 2, 1]
    assert seen == list(reversed(submitted))


def test_listing_filters_by_status(client: TestClient, store: Store) -> None:
    queued, cancelled, running = (submit(client)["id"] for _ in range(3))
    client.post(f"/v1/jobs/{cancelled}/cancel")
    start_running(store, running)
    for status, expected in (("queued", [queued]), ("cancelled", [cancelled]), ("running", [running])):
        items = client.get("/v1/jobs", params={"status": status}).json()["items"]
        assert [job["id"] for job in items] == expected
        assert {job["status"] for job in items} == {status}
    assert client.get("/v1/jobs", params={"status": "succeeded"}).json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "done"}, "status"),
        ({"limit": 201}, "limit"),
        ({"limit": 0}, "limit"),
        ({"cursor": "x"}, "cursor"),
    ],
)
def test_bad_list_parameters_are_422_naming_them(
    client: TestClient, params: dict[str, Any], field: str
) -> None:
    response = client.get("/v1/jobs", params=params)
    assert response.status_code == 422
    assert ["query", field] in [error["loc"] for error in response.json()["detail"]]


def test_the_largest_page_is_200(client: TestClient) -> None:
    assert client.get("/v1/jobs", params={"limit": 200}).status_code == 200


def test_metrics_serve_the_requested_series_with_nan_as_null(client: TestClient, store: Store) -> None:
    job_id = submit(client)["id"]
    points = [MetricPoint("train_loss", step, 2.0 / (step + 1)) for step in range(0, 60, 10)]
    points += [MetricPoint("val_accuracy", step, step / 100) for step in range(0, 60, 10)]
    points.append(MetricPoint("train_loss", 60, math.nan))
    store.write_metrics(job_id, points)

    body = client.get(f"/v1/jobs/{job_id}/metrics", params={"name": ["train_loss", "val_accuracy"]}).json()
    assert body["job_id"] == job_id
    assert set(body["series"]) == {"train_loss", "val_accuracy"}
    assert body["series"]["train_loss"]["steps"] == [0, 10, 20, 30, 40, 50, 60]
    assert body["series"]["train_loss"]["values"][:2] == [2.0, 2.0 / 11]
    assert body["series"]["train_loss"]["values"][-1] is None
    assert body["series"]["val_accuracy"]["values"] == [step / 100 for step in range(0, 60, 10)]


def test_metrics_default_to_the_four_standard_series(client: TestClient, store: Store) -> None:
    job_id = submit(client)["id"]
    store.write_metrics(job_id, [MetricPoint("val_loss", 10, 0.5)])
    series = client.get(f"/v1/jobs/{job_id}/metrics").json()["series"]
    assert set(series) == set(METRIC_NAMES)
    assert series["val_loss"] == {"steps": [10], "values": [0.5]}
    assert series["train_accuracy"] == {"steps": [], "values": []}


def test_metrics_are_downsampled_to_max_points_keeping_both_ends(client: TestClient, store: Store) -> None:
    job_id = submit(client)["id"]
    store.write_metrics(job_id, [MetricPoint("train_loss", step, float(step % 7)) for step in range(1000)])
    series = client.get(f"/v1/jobs/{job_id}/metrics", params={"name": "train_loss", "max_points": 40}).json()[
        "series"
    ]["train_loss"]
    assert 4 <= len(series["steps"]) <= 40
    assert series["steps"] == sorted(series["steps"])
    assert series["steps"][0] == 0 and series["steps"][-1] == 999
    assert max(series["values"]) == 6.0 and min(series["values"]) == 0.0  # the extremes survive


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"max_points": 3}, "max_points"),
        ({"max_points": 10**6}, "max_points"),
        ({"name": "Bad Name"}, "name"),
    ],
)
def test_bad_metric_parameters_are_422(client: TestClient, params: dict[str, Any], field: str) -> None:
    job_id = submit(client)["id"]
    response = client.get(f"/v1/jobs/{job_id}/metrics", params=params)
    assert response.status_code == 422
    assert field in {str(part) for error in response.json()["detail"] for part in error["loc"]}


def telemetry_record(step: int, layer: int, saturated: float | None) -> TelemetryRecord:
    return TelemetryRecord(
        step=step, layer=layer, unit_p15=-1.0 - step, unit_p50=0.0, unit_p85=1.0 + step, p15=-2.0, p50=0.1,
        p85=2.0, mean=0.1, std=1.5, saturated_fraction=saturated, grad_norm=math.inf if step == 20 else 0.3,
        ics_gradient_change=None if step == 0 else 0.01 * step,
        ics_gradient_cosine=None if step == 0 else 0.9,
    )  # fmt: skip


def test_telemetry_is_served_per_layer_in_step_order(client: TestClient, store: Store) -> None:
    job_id = submit(client)["id"]
    assert client.get(f"/v1/jobs/{job_id}/telemetry").json() == {"layers": []}
    store.write_telemetry(
        job_id, [telemetry_record(step, layer, 0.25) for step in (20, 0, 40) for layer in (1, 0)]
    )
    layers = client.get(f"/v1/jobs/{job_id}/telemetry").json()["layers"]
    assert [layer["layer"] for layer in layers] == [0, 1]
    first = layers[0]
    assert first["steps"] == [0, 20, 40]
    assert first["unit_p15"] == [-1.0, -21.0, -41.0]
    assert first["saturated_fraction"] == [0.25, 0.25, 0.25]
    assert first["grad_norm"] == [0.3, None, 0.3]  # inf is no JSON number
    assert first["ics_gradient_change"] == [None, 0.2, 0.4]  # Santurkar's ICS; none measured at step 0 here
    assert first["ics_gradient_cosine"] == [None, 0.9, 0.9]
    assert set(first) == {
        "layer", "steps", "unit_p15", "unit_p50", "unit_p85", "p15", "p50", "p85", "mean", "std",
        "saturated_fraction", "grad_norm", "ics_gradient_change", "ics_gradient_cosine",
    }  # fmt: skip


def test_cancelling_a_queued_job_ends_it_and_a_second_cancel_is_409(client: TestClient) -> None:
    job_id = submit(client)["id"]
    response = client.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 202
    assert response.json()["status"] == "cancelled"
    again = client.post(f"/v1/jobs/{job_id}/cancel")
    assert again.status_code == 409
    assert "already finished" in again.json()["detail"]


def test_cancelling_a_running_job_asks_its_worker_to_stop(client: TestClient, store: Store) -> None:
    job_id = submit(client)["id"]
    start_running(store, job_id)
    response = client.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 202
    assert response.json()["status"] == "running"  # the worker stops it cooperatively
    assert store.is_cancel_requested(job_id)


def test_cancelling_a_finished_job_is_409_and_changes_nothing(client: TestClient, store: Store) -> None:
    job_id = submit(client)["id"]
    owner = start_running(store, job_id)
    assert store.finish_job(job_id, owner, "succeeded", Summary(final_val_accuracy=0.9), device="cpu")
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 409
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"


def test_cancel_of_an_unknown_job_is_404(client: TestClient) -> None:
    assert client.post(f"/v1/jobs/{uuid.uuid4().hex}/cancel").status_code == 404


def test_a_diverged_job_reads_with_null_for_non_finite_figures(client: TestClient, store: Store) -> None:
    job_id = submit(client)["id"]
    owner = start_running(store, job_id)
    store.set_progress(job_id, 30, 60, 120.0, owner=owner)
    summary = Summary(final_train_loss=math.nan, diverged_at_step=30, best_val_accuracy=0.4)
    assert store.finish_job(job_id, owner, "diverged", summary, device="cpu")
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "diverged"
    assert job["progress"] == {"step": 30, "steps": 60}
    assert set(job["summary"]) == SUMMARY_FIELDS
    assert job["summary"]["diverged_at_step"] == 30
    assert job["summary"]["final_train_loss"] is None
    assert job["summary"]["best_val_accuracy"] == 0.4
    assert job["device"] == "cpu" and job["attempts"] == 1 and job["finished_at"] is not None
