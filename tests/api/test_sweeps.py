"""`/v1/sweeps` and the plot routes on a migrated SQLite and PostgreSQL database: expansion, validation as
a whole (422, nothing created), the aggregated view, cancel, the heatmap and the ICS picture."""

from __future__ import annotations

import io
import math
import statistics
import uuid
import xml.etree.ElementTree as ElementTree
from typing import Any

import matplotlib.image
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from core.settings import Settings
from core.store import Store
from tests.api.conftest import settings_for
from tests.api.recorded_runs import BASE_SPEC, finish, take_lease

GRID = {"learning_rate": [0.01, 0.1, 1.0], "batch_norm": [True, False]}
SEEDS = [0, 1]


def submit_sweep(client: TestClient, **changes: Any) -> dict[str, Any]:
    body = {"name": "lr-x-bn", "base": BASE_SPEC, "grid": GRID, "seeds": SEEDS, **changes}
    response = client.post("/v1/sweeps", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def decoded_png(content: bytes) -> Any:
    pixels = matplotlib.image.imread(io.BytesIO(content), format="png")
    assert pixels.ndim == 3 and pixels.shape[2] == 4
    return pixels


# --- submit ---------------------------------------------------------------------------------------


def test_a_sweep_creates_and_publishes_one_job_per_grid_point_and_seed(
    client: TestClient, store: Store
) -> None:
    created = submit_sweep(client)
    assert set(created) == {"id", "size", "job_ids"}
    assert created["size"] == len(created["job_ids"]) == 3 * 2 * 2
    jobs = [store.get_job(job_id) for job_id in created["job_ids"]]
    assert all(job is not None and job.sweep_id == created["id"] and job.enqueued_at for job in jobs)
    combinations = [
        (job.spec["learning_rate"], job.spec["batch_norm"], job.spec["seed"]) for job in jobs if job
    ]
    assert combinations == [
        (lr, bn, seed) for lr in GRID["learning_rate"] for bn in GRID["batch_norm"] for seed in SEEDS
    ]
    listed = client.get("/v1/jobs", params={"sweep_id": created["id"], "limit": 200}).json()["items"]
    assert {job["id"] for job in listed} == set(created["job_ids"])


def test_dotted_axes_reach_into_the_architecture(client: TestClient, store: Store) -> None:
    created = submit_sweep(client, grid={"architecture.activation": ["relu", "tanh"]}, seeds=[3])
    jobs = [store.get_job(job_id) for job_id in created["job_ids"]]
    assert [job.spec["architecture"]["activation"] for job in jobs if job] == ["relu", "tanh"]
    assert all(
        job.spec["architecture"]["hidden"] == BASE_SPEC["architecture"]["hidden"] for job in jobs if job
    )


def test_one_bad_grid_point_is_a_422_naming_it_and_nothing_is_created(client: TestClient) -> None:
    response = client.post(
        "/v1/sweeps", json={"base": BASE_SPEC, "grid": {"batch_norm": [True], "learning_rate": [0.1, -1]}}
    )
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "grid", "learning_rate", 1]
    assert "learning_rate=-1" in error["msg"] and error["type"] == "greater_than"
    assert client.get("/v1/sweeps").json()["items"] == []
    assert client.get("/v1/jobs").json()["items"] == []


def test_a_bad_base_spec_is_a_422_inside_base(client: TestClient) -> None:
    response = client.post("/v1/sweeps", json={"base": {**BASE_SPEC, "dropout": 2}, "grid": {}})
    assert response.status_code == 422
    assert ["body", "base", "dropout"] in [error["loc"] for error in response.json()["detail"]]


def test_the_size_cap_comes_from_settings(migrated_database_url: str, broker_url: str) -> None:
    settings: Settings = settings_for(migrated_database_url, broker_url, max_sweep_size=11)
    app = create_app(settings)
    try:
        with TestClient(app) as client:
            response = client.post("/v1/sweeps", json={"base": BASE_SPEC, "grid": GRID, "seeds": SEEDS})
            assert response.status_code == 422
            assert response.json()["detail"][0]["loc"] == ["body", "grid"]
            assert "12" in response.json()["detail"][0]["msg"] and "11" in response.json()["detail"][0]["msg"]
            assert client.get("/v1/jobs").json()["items"] == []
            assert client.post("/v1/sweeps", json={"base": BASE_SPEC, "grid": GRID}).status_code == 201
    finally:
        app.state.store.dispose()


# --- read, list, cancel -----------------------------------------------------------------------------


def test_the_sweep_view_aggregates_each_grid_point_over_its_seeds(client: TestClient, store: Store) -> None:
    created = submit_sweep(client, grid={"batch_norm": [True, False]}, seeds=[0, 1, 2])
    bn_jobs, plain_jobs = created["job_ids"][:3], created["job_ids"][3:]
    bn_curves = [[0.1, 0.95, 0.96], [0.1, 0.8, 0.93], [0.1, 0.91, math.nan]]
    for job_id, curve in zip(bn_jobs[:2], bn_curves[:2], strict=True):
        finish(store, job_id, curve)
    finish(store, bn_jobs[2], bn_curves[2], status="diverged", diverged_at_step=20)
    finish(store, plain_jobs[0], [0.1, 0.4, 0.5])

    view = client.get(f"/v1/sweeps/{created['id']}").json()
    assert view["execution"]["requested"] == "fused" and view["execution"]["used"] == "fused"
    assert [group["job_ids"] for group in view["execution"]["fused_groups"]] == [bn_jobs, plain_jobs]
    assert view["status_counts"]["succeeded"] == 3 and view["status_counts"]["diverged"] == 1
    assert view["status_counts"]["queued"] == 2 and view["done"] == 4
    bn, plain = view["points"]
    assert bn["point"] == {"batch_norm": True} and plain["point"] == {"batch_norm": False}
    assert bn["job_ids"] == bn_jobs and bn["seeds"] == [0, 1, 2]
    assert (bn["done"], bn["diverged"], bn["reached_target"]) == (3, 1, 3)
    finals = [curve[-1] for curve in bn_curves[:2]]
    assert bn["final_accuracy"]["mean"] == pytest.approx(statistics.fmean(finals))
    assert bn["final_accuracy"]["std"] == pytest.approx(statistics.stdev(finals))
    assert bn["final_accuracy"]["n"] == 2  # the diverged run has no final accuracy
    low, high = bn["final_accuracy"]["ci95"]  # mean ± t(0.975, 1) · std / √2, cut to accuracies' [0, 1]
    half_width = 12.7062047 * statistics.stdev(finals) / math.sqrt(2)
    assert (low, high) == pytest.approx(
        (max(0.0, statistics.fmean(finals) - half_width), min(1.0, statistics.fmean(finals) + half_width))
    )
    assert bn["final_accuracy"]["ci_method"] == "t"
    bests = [max(value for value in curve if value == value) for curve in bn_curves]
    assert bn["best_accuracy"]["mean"] == pytest.approx(statistics.fmean(bests))
    steps = [10, 20, 10]  # where each seed's curve first met 0.9
    assert bn["steps_to_target"]["mean"] == pytest.approx(statistics.fmean(steps))
    assert bn["steps_to_target"]["std"] == pytest.approx(statistics.stdev(steps))
    assert (plain["done"], plain["reached_target"], plain["steps_to_target"]["mean"]) == (1, 0, None)
    assert plain["final_accuracy"] == {"n": 1, "mean": 0.5, "std": None, "ci95": None, "ci_method": "t"}


def test_sweeps_are_listed_newest_first_with_a_cursor(client: TestClient) -> None:
    first = submit_sweep(client, name="first", grid={}, seeds=[0])
    second = submit_sweep(client, name="second", grid={}, seeds=[0])
    page = client.get("/v1/sweeps", params={"limit": 1}).json()
    assert [item["id"] for item in page["items"]] == [second["id"]]
    assert page["items"][0]["name"] == "second" and page["items"][0]["size"] == 1
    rest = client.get("/v1/sweeps", params={"limit": 1, "cursor": page["next_cursor"]}).json()
    assert [item["id"] for item in rest["items"]] == [first["id"]] and rest["next_cursor"] is None
    assert client.get("/v1/sweeps", params={"cursor": "nonsense"}).status_code == 422


def test_cancel_stops_every_unfinished_job_and_then_conflicts(client: TestClient, store: Store) -> None:
    created = submit_sweep(client, grid={"batch_norm": [True, False]}, seeds=[0])
    finished, queued = created["job_ids"]
    finish(store, finished, [0.1, 0.95])
    response = client.post(f"/v1/sweeps/{created['id']}/cancel")
    assert response.status_code == 202
    assert response.json()["status_counts"]["cancelled"] == 1
    assert response.json()["cancel_requested"] == 1, "the queued job counts though it is cancelled already"
    assert store.get_job(queued).status == "cancelled"  # type: ignore[union-attr]
    assert store.get_job(finished).status == "succeeded"  # type: ignore[union-attr]
    assert client.post(f"/v1/sweeps/{created['id']}/cancel").status_code == 409


def test_progress_sums_the_steps_of_every_job_and_the_rate_of_the_running_ones(
    client: TestClient, store: Store
) -> None:
    created = submit_sweep(client, grid={"learning_rate": [0.01, 0.1, 1.0]}, seeds=[0, 1])
    finished, diverged, running, fast, _queued, _also_queued = created["job_ids"]
    budget = BASE_SPEC["steps"]
    assert client.get(f"/v1/sweeps/{created['id']}").json()["progress"] == {
        "steps_done": 0,
        "steps_total": 6 * budget,
        "model_steps_per_second": 0.0,
        "eta_seconds": None,
    }
    finish(store, finished, [0.1, 0.95])
    finish(store, diverged, [0.1, math.nan], status="diverged", diverged_at_step=10, steps_run=10)
    store.set_progress(running, 50, budget, 20.0, owner=take_lease(store, running))
    store.set_progress(fast, 30, budget, 60.0, owner=take_lease(store, fast))
    progress = client.get(f"/v1/sweeps/{created['id']}").json()["progress"]
    # Finished jobs count their whole budget, whatever their outcome; queued ones nothing yet.
    assert progress["steps_done"] == 2 * budget + 50 + 30
    assert progress["steps_total"] == 6 * budget
    assert progress["model_steps_per_second"] == pytest.approx(80.0)
    assert progress["eta_seconds"] == pytest.approx((6 * budget - progress["steps_done"]) / 80.0)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/v1/sweeps/{id}"),
        ("post", "/v1/sweeps/{id}/cancel"),
        ("get", "/v1/sweeps/{id}/plots/heatmap"),
    ],
)
@pytest.mark.parametrize("sweep_id", [uuid.uuid4().hex, "not-a-uuid"])
def test_an_unknown_sweep_is_a_404(client: TestClient, method: str, path: str, sweep_id: str) -> None:
    response = client.request(method.upper(), path.format(id=sweep_id))
    assert response.status_code == 404 and sweep_id in response.json()["detail"]


# --- plots ----------------------------------------------------------------------------------------


def test_the_heatmap_is_a_png_or_an_svg_marking_diverged_cells(client: TestClient, store: Store) -> None:
    created = submit_sweep(client, seeds=[0])
    for index, job_id in enumerate(created["job_ids"]):
        if index == 4:  # lr 1.0 with BN
            finish(store, job_id, [0.1, math.nan], status="diverged", diverged_at_step=10)
        else:
            finish(store, job_id, [0.1, 0.5 + index / 20])
    path = f"/v1/sweeps/{created['id']}/plots/heatmap"
    png = client.get(path)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    decoded_png(png.content)
    svg = client.get(path, params={"format": "svg", "x": "batch_norm", "y": "learning_rate"})
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert ElementTree.fromstring(svg.content).tag.endswith("svg")
    assert "1/1 diverged" in svg.text and "learning_rate" in svg.text


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"x": "dropout"}, "x"),
        ({"y": "seed"}, "y"),
        ({"x": "batch_norm", "y": "batch_norm"}, "y"),
        ({"format": "jpg"}, "format"),
    ],
)
def test_heatmap_axes_must_be_two_different_grid_axes(client: TestClient, params: dict, field: str) -> None:
    created = submit_sweep(client, seeds=[0])
    response = client.get(f"/v1/sweeps/{created['id']}/plots/heatmap", params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", field]


def test_a_sweep_without_axes_has_no_heatmap(client: TestClient) -> None:
    created = submit_sweep(client, grid={}, seeds=[0, 1])
    assert client.get(f"/v1/sweeps/{created['id']}/plots/heatmap").status_code == 409


# --- tuned baselines --------------------------------------------------------------------------------


def test_the_tuned_view_compares_each_arm_at_its_best_learning_rate(client: TestClient, store: Store) -> None:
    """BN reaches 0.9 soonest at lr 1.0, no BN at lr 0.1 (never at 0.01): best against best, choices shown."""
    created = submit_sweep(client, grid={"batch_norm": [True, False], "learning_rate": [0.01, 0.1, 1.0]})
    jobs = iter(created["job_ids"])  # grid order: batch_norm, then learning rate, seeds innermost
    curves = {
        (True, 0.01): [[0.1, 0.5, 0.91], [0.1, 0.6, 0.92]],
        (True, 0.1): [[0.1, 0.95, 0.96], [0.1, 0.93, 0.95]],
        (True, 1.0): [[0.92, 0.97, 0.97], [0.91, 0.96, 0.97]],
        (False, 0.01): [[0.1, 0.2, 0.3], [0.1, 0.2, 0.35]],
        (False, 0.1): [[0.1, 0.5, 0.92], [0.1, 0.6, 0.91]],
        (False, 1.0): [[0.1, 0.3, 0.5], [0.1, 0.4, 0.6]],
    }
    for point_curves in curves.values():
        for curve in point_curves:
            finish(store, next(jobs), curve)

    response = client.get(
        f"/v1/sweeps/{created['id']}",
        params={"arm": "batch_norm", "tune": "learning_rate", "baseline": "false"},
    )
    assert response.status_code == 200, response.text
    tuned = response.json()["tuned"]
    assert tuned["arm"] == "batch_norm" and tuned["tune"] == ["learning_rate"] and tuned["baseline"] is False
    assert "fewest mean steps to target" in tuned["criterion"] and tuned["provisional"] is False
    bn, plain = tuned["arms"]
    assert (bn["value"], bn["chosen"], bn["chosen_by"]) == (True, {"learning_rate": 1.0}, "steps_to_target")
    assert (plain["chosen"], plain["settings_tried"]) == ({"learning_rate": 0.1}, 3)
    assert bn["steps_to_target"]["mean"] == 0 and plain["steps_to_target"]["mean"] == 20
    speedup = bn["speedup_vs_baseline"]
    assert speedup["estimate"]["value"] == 20.0  # 20 steps against 0 (counted as 1)
    assert speedup["estimate"]["ci_method"] == "bootstrap" and speedup["is_lower_bound"] is False
    assert speedup["estimate"]["ci95"] is None  # two seeds are too few to resample
    assert speedup["verdict"] == "no detectable difference at n = 2"
    assert plain["speedup_vs_baseline"] is None and plain["final_accuracy_vs_baseline"] is None
    difference = bn["final_accuracy_vs_baseline"]
    assert difference["difference"]["seeds"] == [0, 1]
    assert difference["difference"]["mean"] == pytest.approx(((0.97 - 0.92) + (0.97 - 0.91)) / 2)
    assert set(difference["difference"]) >= {"n", "mean", "std", "ci95", "ci_method"}
    assert response.json()["points"][0]["final_accuracy"]["ci_method"] == "t"
    assert client.get(f"/v1/sweeps/{created['id']}").json()["tuned"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"arm": "dropout"}, "arm"),
        ({"arm": "batch_norm"}, "tune"),  # learning_rate is neither the arm nor tuned
        ({"arm": "batch_norm", "tune": "seed"}, "tune"),
        ({"arm": "batch_norm", "tune": "learning_rate", "baseline": "maybe"}, "baseline"),
        ({"arm": "batch_norm", "tune": "learning_rate", "baseline": "0.5"}, "baseline"),
        ({"tune": "learning_rate"}, "arm"),
    ],
)
def test_a_tuned_view_that_does_not_fit_the_grid_is_a_422_naming_the_parameter(
    client: TestClient, params: dict[str, str], field: str
) -> None:
    created = submit_sweep(client)
    response = client.get(f"/v1/sweeps/{created['id']}", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", field]


def test_the_curves_are_a_mean_with_a_95_percent_band_per_grid_point(
    client: TestClient, store: Store
) -> None:
    created = submit_sweep(client, grid={"batch_norm": [True, False]}, seeds=[0, 1, 2])
    bn_curves = [[0.1, 0.5, 0.9], [0.2, 0.6, 0.95], [0.1, 0.7, math.nan]]
    for job_id, curve in zip(created["job_ids"][:3], bn_curves, strict=True):
        finish(store, job_id, curve)
    finish(store, created["job_ids"][3], [0.1, 0.2, 0.3])

    response = client.get(f"/v1/sweeps/{created['id']}/curves", params={"metric": "val_accuracy"})
    assert response.status_code == 200, response.text
    bn, plain = response.json()["points"]
    assert bn["point"] == {"batch_norm": True} and bn["job_ids"] == created["job_ids"][:3]
    assert bn["steps"] == [0, 10, 20] and bn["n"] == [3, 3, 2]  # the NaN is no value
    assert bn["mean"][1] == pytest.approx(0.6)
    half_width = 4.3026527 * statistics.stdev([0.5, 0.6, 0.7]) / math.sqrt(3)
    assert [bn["ci95_low"][1], bn["ci95_high"][1]] == pytest.approx([0.6 - half_width, 0.6 + half_width])
    assert plain["n"] == [1, 1, 1] and plain["ci95_low"] == [None, None, None]  # one seed: no band
    assert client.get(f"/v1/sweeps/{uuid.uuid4().hex}/curves").status_code == 404
    assert client.get(f"/v1/sweeps/{created['id']}/curves", params={"max_points": 3}).status_code == 422
