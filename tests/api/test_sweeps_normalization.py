"""`/v1/sweeps` over the normalization kinds and noisy BN on a migrated SQLite and PostgreSQL database:
each grid point trains the kind it names (batch_norm agreeing), is labelled and aggregated by it, fuses only
with its own kind, is compared by it as an arm, and heads its heatmap column; noise parameters are axes."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.store import Store
from tests.api.recorded_runs import BASE_SPEC, finish

KINDS = ["none", "batch", "layer", "group"]
# Per kind, two seeds' validation curves (evaluated every 10 steps): batch reaches 0.9 first.
CURVES = {
    "none": [[0.1, 0.3, 0.5], [0.1, 0.4, 0.6]],
    "batch": [[0.1, 0.92, 0.96], [0.1, 0.91, 0.95]],
    "layer": [[0.1, 0.6, 0.93], [0.1, 0.7, 0.94]],
    "group": [[0.1, 0.5, 0.91], [0.1, 0.6, 0.89]],
}
NOISE = {"mean_std": 0.5, "scale_std": 1.0}


def submit(client: TestClient, grid: dict[str, list[Any]], seeds: list[int], **base: Any) -> dict[str, Any]:
    body = {"name": "kinds", "base": {**BASE_SPEC, **base}, "grid": grid, "seeds": seeds}
    response = client.post("/v1/sweeps", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_a_grid_over_normalization_trains_labels_aggregates_and_compares_each_kind(
    client: TestClient, store: Store
) -> None:
    created = submit(client, {"normalization": KINDS}, seeds=[0, 1])  # the base says batch_norm: true
    jobs = [store.get_job(job_id) for job_id in created["job_ids"]]
    specs = [job.spec for job in jobs if job is not None]
    assert [(spec["normalization"], spec["batch_norm"]) for spec in specs] == [
        (kind, kind == "batch") for kind in KINDS for _ in (0, 1)
    ]
    assert [job.name for job in jobs if job][4] == 'kinds normalization="layer" seed=0'
    for job_id, curve in zip(created["job_ids"], [c for kind in KINDS for c in CURVES[kind]], strict=True):
        finish(store, job_id, curve)

    view = client.get(f"/v1/sweeps/{created['id']}").json()
    assert [point["point"] for point in view["points"]] == [{"normalization": kind} for kind in KINDS]
    means = {point["point"]["normalization"]: point["final_accuracy"]["mean"] for point in view["points"]}
    assert means == pytest.approx({kind: (CURVES[kind][0][-1] + CURVES[kind][1][-1]) / 2 for kind in KINDS})
    assert [point["reached_target"] for point in view["points"]] == [0, 2, 2, 1]
    # One fused group per kind: a stack holds one normalization.
    groups = [group["job_ids"] for group in view["execution"]["fused_groups"]]
    assert groups == [created["job_ids"][index : index + 2] for index in range(0, 8, 2)]

    # The kinds as arms, against no normalization named as a bare word.
    tuned = client.get(f"/v1/sweeps/{created['id']}", params={"arm": "normalization", "baseline": "none"})
    assert tuned.status_code == 200, tuned.text
    arms = tuned.json()["tuned"]
    assert arms["baseline"] == "none" and [arm["value"] for arm in arms["arms"]] == KINDS
    by_kind = {arm["value"]: arm for arm in arms["arms"]}
    assert (
        by_kind["batch"]["steps_to_target"]["mean"] == 10
        and by_kind["layer"]["steps_to_target"]["mean"] == 20
    )

    svg = client.get(f"/v1/sweeps/{created['id']}/plots/heatmap", params={"format": "svg"})
    assert svg.status_code == 200
    assert all(f"{kind}" in svg.text for kind in KINDS) and "normalization" in svg.text


def test_noisy_bn_and_its_parameters_are_grid_axes(client: TestClient, store: Store) -> None:
    on_off = submit(client, {"bn_noise": [None, NOISE]}, seeds=[0])
    specs = [job.spec for job_id in on_off["job_ids"] if (job := store.get_job(job_id)) is not None]
    assert [spec["bn_noise"] for spec in specs] == [None, NOISE]
    view = client.get(f"/v1/sweeps/{on_off['id']}").json()
    assert [point["point"] for point in view["points"]] == [{"bn_noise": None}, {"bn_noise": NOISE}]
    assert view["execution"]["used"] == "separate"  # noisy and plain BN never share a stack

    # A noise parameter as a dotted axis: the base without noise takes the other parameter's default.
    scales = submit(client, {"bn_noise.scale_std": [0.25, 2.0]}, seeds=[0, 1])
    specs = [job.spec for job_id in scales["job_ids"] if (job := store.get_job(job_id)) is not None]
    assert [spec["bn_noise"] for spec in specs] == [
        {"mean_std": 0.5, "scale_std": scale} for scale in (0.25, 0.25, 2.0, 2.0)
    ]
    for job_id, final in zip(scales["job_ids"], [0.9, 0.8, 0.6, 0.5], strict=True):
        finish(store, job_id, [0.1, final])
    view = client.get(f"/v1/sweeps/{scales['id']}").json()
    assert [point["point"] for point in view["points"]] == [
        {"bn_noise.scale_std": 0.25},
        {"bn_noise.scale_std": 2.0},
    ]
    assert [point["final_accuracy"]["mean"] for point in view["points"]] == pytest.approx([0.85, 0.55])

    # Noise on a grid point without BN is a 422 located on the axis, nothing created.
    response = client.post(
        "/v1/sweeps",
        json={"base": {**BASE_SPEC, "batch_norm": False}, "grid": {"bn_noise.scale_std": [1.0]}},
    )
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", "grid", "bn_noise.scale_std", 0] and "normalization batch" in error["msg"]
