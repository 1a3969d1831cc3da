"""`GET /v1/compare` and `GET /v1/compare/plot` on a migrated SQLite and PostgreSQL database, with runs
written through the store: every field of a comparison, as a client reads it."""

from __future__ import annotations

import io
import json
import math
import uuid
import xml.etree.ElementTree as ElementTree

import matplotlib.image
import pytest
from fastapi.testclient import TestClient

from core.results import MetricPoint
from core.store import Store
from tests.api.recorded_runs import STEPS_PER_SECOND, finish, record_run, spec_with, take_lease

ROW_FIELDS = {
    "id", "name", "status", "spec_diff", "eval_every", "steps", "final", "best", "steps_to_target",
    "seconds_to_target", "speedup_vs_baseline", "speedup_is_lower_bound", "diverged_at_step", "landscape",
    "ics",
}  # fmt: skip
PLAIN = [0.1, 0.3, 0.45, 0.52, 0.58, 0.61]  # never reaches 0.9
NORMALIZED = [0.1, 0.6, 0.85, 0.93, 0.95, 0.97]  # reaches 0.9 at its 4th evaluation (step 30)


def compare(client: TestClient, ids: list[str], **params: object) -> dict:
    response = client.get("/v1/compare", params={"ids": ids, **params})
    assert response.status_code == 200, response.text
    return json.loads(response.text, parse_constant=lambda constant: pytest.fail(f"{constant} in JSON"))


def rows_by_id(comparison: dict) -> dict[str, dict]:
    return {row["id"]: row for row in comparison["jobs"]}


def test_bn_against_a_baseline_that_never_got_there_is_a_lower_bound_speedup(
    client: TestClient, store: Store
) -> None:
    plain = record_run(store, PLAIN, batch_norm=False, name="plain")
    normalized = record_run(store, NORMALIZED, batch_norm=True, name="bn", seconds_to_target=0.07)
    comparison = compare(client, [plain, normalized], baseline=plain, target=0.9)

    assert comparison["metric"] == "val_accuracy" and comparison["target"] == 0.9
    assert comparison["baseline"] == plain
    rows = rows_by_id(comparison)
    assert all(set(row) == ROW_FIELDS for row in rows.values())
    bn, baseline = rows[normalized], rows[plain]
    assert bn["spec_diff"] == {"batch_norm": True} and baseline["spec_diff"] == {"batch_norm": False}
    assert (bn["eval_every"], bn["steps"], bn["name"], bn["status"]) == (10, 200, "bn", "succeeded")
    assert (bn["final"], bn["best"]) == (NORMALIZED[-1], max(NORMALIZED))
    assert (baseline["final"], baseline["best"]) == (PLAIN[-1], max(PLAIN))
    first_at_target = 10 * next(index for index, value in enumerate(NORMALIZED) if value >= 0.9)
    assert bn["steps_to_target"] == first_at_target
    assert bn["seconds_to_target"] == 0.07  # the training core's own timing of that crossing
    assert bn["speedup_is_lower_bound"] is True
    assert bn["speedup_vs_baseline"] == pytest.approx(200 / first_at_target)  # the baseline's whole budget
    assert baseline["steps_to_target"] is None and baseline["seconds_to_target"] is None
    assert baseline["speedup_vs_baseline"] == 1.0 and baseline["speedup_is_lower_bound"] is False
    assert comparison["series"][normalized] == {"steps": [0, 10, 20, 30, 40, 50], "values": NORMALIZED}


def test_a_baseline_that_got_there_gives_a_plain_ratio_and_defaults_apply(
    client: TestClient, store: Store
) -> None:
    slow = record_run(store, [0.1, 0.5, 0.7, 0.8, 0.85, 0.88, 0.91], learning_rate=0.01)
    fast = record_run(store, [0.1, 0.92], learning_rate=0.1)
    never = record_run(store, [0.1, 0.2], learning_rate=0.001)
    # No baseline: the first id. No target: the baseline's target_accuracy (0.9).
    comparison = compare(client, [slow, fast, never])
    assert comparison["baseline"] == slow and comparison["target"] == 0.9
    rows = rows_by_id(comparison)
    assert rows[fast]["speedup_vs_baseline"] == pytest.approx(60 / 10)
    assert rows[fast]["speedup_is_lower_bound"] is False
    assert rows[never]["speedup_vs_baseline"] is None and rows[never]["steps_to_target"] is None
    assert rows[fast]["spec_diff"] == {"learning_rate": 0.1}
    assert [row["id"] for row in comparison["jobs"]] == [fast, slow, never]  # fewest steps first


def test_a_target_other_than_the_jobs_own_estimates_seconds_from_throughput(
    client: TestClient, store: Store
) -> None:
    job = record_run(store, NORMALIZED, seconds_to_target=0.07)
    (row,) = compare(client, [job], target=0.6)["jobs"]
    assert row["steps_to_target"] == 10
    assert row["seconds_to_target"] == pytest.approx(10 / STEPS_PER_SECOND)


def test_diverged_jobs_sort_after_finished_ones_and_nan_never_reaches_json(
    client: TestClient, store: Store
) -> None:
    diverged = record_run(
        store, [0.1, 0.95, math.nan], status="diverged", diverged_at_step=20, learning_rate=10.0
    )
    finished = record_run(store, [0.1, 0.5, 0.6], learning_rate=0.1)
    comparison = compare(client, [diverged, finished], baseline=finished)
    assert [row["id"] for row in comparison["jobs"]] == [finished, diverged]
    row = rows_by_id(comparison)[diverged]
    assert row["status"] == "diverged" and row["diverged_at_step"] == 20
    assert row["final"] is None and row["best"] == 0.95
    assert row["steps_to_target"] == 10 and row["speedup_is_lower_bound"] is True
    assert comparison["series"][diverged]["values"] == [0.1, 0.95, None]


def test_a_running_baseline_bounds_the_speedup_by_the_steps_it_has_run(
    client: TestClient, store: Store
) -> None:
    running = store.create_job(spec_with(batch_norm=False))
    owner = take_lease(store, running.id)
    store.write_metrics(running.id, [MetricPoint("val_accuracy", 10 * index, 0.3) for index in range(5)])
    store.set_progress(running.id, 45, 200, STEPS_PER_SECOND, owner=owner)
    normalized = record_run(store, NORMALIZED)
    rows = rows_by_id(compare(client, [running.id, normalized]))
    assert rows[normalized]["speedup_vs_baseline"] == pytest.approx(45 / 30)
    assert rows[normalized]["speedup_is_lower_bound"] is True
    assert rows[running.id]["status"] == "running"


def test_loss_metrics_count_to_a_target_downwards(client: TestClient, store: Store) -> None:
    job = store.create_job(spec_with())
    losses = [2.3, 1.2, 0.6, 0.45, 0.5, 0.3]
    store.write_metrics(
        job.id, [MetricPoint("val_loss", 10 * index, value) for index, value in enumerate(losses)]
    )
    finish(store, job.id, [0.1, 0.5])
    (row,) = compare(client, [job.id], metric="val_loss", target=0.5)["jobs"]
    assert row["steps_to_target"] == 30 and row["best"] == min(losses) and row["final"] == losses[-1]


def test_long_series_are_downsampled_keeping_the_exact_target_crossing(
    client: TestClient, store: Store
) -> None:
    job = store.create_job(spec_with(steps=5000, eval_every=1))
    curve = [0.5 + 0.3 * step / 5000 for step in range(5001)]
    curve[3217] = 0.95  # a lone crossing deep inside a bucket
    store.write_metrics(
        job.id, [MetricPoint("val_accuracy", step, value) for step, value in enumerate(curve)]
    )
    comparison = compare(client, [job.id], target=0.9, max_points=40)
    series = comparison["series"][job.id]
    assert len(series["steps"]) <= 40
    assert series["steps"][0] == 0 and series["steps"][-1] == 5000
    assert 3217 in series["steps"] and series["values"][series["steps"].index(3217)] == 0.95
    assert comparison["jobs"][0]["steps_to_target"] == 3217
    assert comparison["jobs"][0]["best"] == 0.95 and comparison["jobs"][0]["final"] == curve[-1]


def test_unknown_ids_are_a_404_naming_each_of_them(client: TestClient, store: Store) -> None:
    known = record_run(store, PLAIN)
    missing = uuid.uuid4().hex
    response = client.get("/v1/compare", params={"ids": [known, missing, "not-a-uuid"]})
    assert response.status_code == 404
    assert missing in response.json()["detail"] and "not-a-uuid" in response.json()["detail"]
    assert known not in response.json()["detail"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"ids": None}, "ids"),
        ({"ids": [uuid.uuid4().hex for _ in range(51)]}, "ids"),
        ({"max_points": 5}, "max_points"),
        ({"metric": "Val Accuracy"}, "metric"),
        ({"target": "nan"}, "target"),
        ({"format": "gif"}, "format"),
    ],
)
def test_bad_queries_are_422_naming_the_parameter(
    client: TestClient, store: Store, params: dict, field: str
) -> None:
    job = record_run(store, PLAIN)
    for path in ("/v1/compare", "/v1/compare/plot"):
        query = {key: value for key, value in {"ids": [job], **params}.items() if value is not None}
        if field == "format" and path == "/v1/compare":
            continue  # only the plot has a format
        response = client.get(path, params=query)
        assert response.status_code == 422, (path, response.text)
        assert any(error["loc"][-1] == field for error in response.json()["detail"]), response.text


def test_the_baseline_must_be_one_of_the_compared_jobs(client: TestClient, store: Store) -> None:
    job, other = record_run(store, PLAIN), record_run(store, NORMALIZED)
    response = client.get("/v1/compare", params={"ids": [job], "baseline": other})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "baseline"]


def test_fifty_jobs_can_be_compared(client: TestClient, store: Store) -> None:
    ids = [record_run(store, [0.1, 0.5 + index / 100]) for index in range(50)]
    comparison = compare(client, ids)
    assert len(comparison["jobs"]) == 50 and set(comparison["series"]) == set(ids)


def test_the_compare_plot_is_a_png_or_an_svg(client: TestClient, store: Store) -> None:
    plain = record_run(store, PLAIN, batch_norm=False)
    normalized = record_run(store, NORMALIZED, batch_norm=True)
    png = client.get("/v1/compare/plot", params={"ids": [plain, normalized], "target": 0.9})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    pixels = matplotlib.image.imread(io.BytesIO(png.content), format="png")
    assert pixels.ndim == 3 and pixels.shape[2] == 4
    svg = client.get("/v1/compare/plot", params={"ids": [plain, normalized], "format": "svg"})
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert ElementTree.fromstring(svg.content).tag.endswith("svg")
    assert "batch_norm=True" in svg.text and "target 0.9" in svg.text
    assert client.get("/v1/compare/plot", params={"ids": [uuid.uuid4().hex]}).status_code == 404


def test_a_running_job_shows_its_newest_points_every_time(client: TestClient, store: Store) -> None:
    running = store.create_job(spec_with())
    owner = take_lease(store, running.id)
    store.write_metrics(
        running.id, [MetricPoint("val_accuracy", 0, 0.1), MetricPoint("val_accuracy", 10, 0.5)]
    )
    store.set_progress(running.id, 10, 200, STEPS_PER_SECOND, owner=owner)
    assert compare(client, [running.id])["series"][running.id]["steps"] == [0, 10]
    store.write_metrics(running.id, [MetricPoint("val_accuracy", 20, 0.92)])
    again = compare(client, [running.id])
    assert again["series"][running.id]["steps"] == [0, 10, 20]
    assert again["jobs"][0]["steps_to_target"] == 20


def test_a_finished_job_reads_the_same_from_the_cache_as_from_the_database(
    client: TestClient, store: Store
) -> None:
    job = record_run(store, NORMALIZED)
    first = compare(client, [job], max_points=50)
    assert compare(client, [job], max_points=50) == first
    plot = client.get("/v1/compare/plot", params={"ids": [job], "max_points": 50, "format": "svg"})
    assert plot.status_code == 200


# --- arms over matched seeds ------------------------------------------------------------------------


def test_two_arms_over_matched_seeds_get_a_paired_difference_speedup_and_verdict(
    client: TestClient, store: Store
) -> None:
    plain = [
        record_run(store, [*PLAIN[:-1], 0.61 + 0.01 * seed], batch_norm=False, seed=seed) for seed in range(5)
    ]
    normalized = [
        record_run(store, [*NORMALIZED[:-1], 0.97 - 0.01 * seed], batch_norm=True, seed=seed)
        for seed in range(5)  # five seeds: the fewest a bootstrap interval is given for
    ]
    comparison = compare(client, [*plain, *normalized], arm="batch_norm")
    arms = comparison["arms"]
    assert arms["arm"] == "batch_norm" and arms["baseline"] is False  # the baseline job's arm
    baseline_arm, bn_arm = arms["arms"]
    assert baseline_arm["value"] is False and baseline_arm["job_ids"] == plain
    assert bn_arm["seeds"] == [0, 1, 2, 3, 4] and bn_arm["final_accuracy"]["n"] == 5
    assert set(bn_arm["final_accuracy"]) == {"n", "mean", "std", "ci95", "ci_method"}
    difference = bn_arm["final_accuracy_vs_baseline"]
    assert difference["difference"]["mean"] == pytest.approx(0.32, abs=1e-9)  # 0.36 - 0.02 per seed
    low, high = difference["difference"]["ci95"]
    assert 0 < low < high  # the same ±0.01 per seed in opposite directions: a small spread, far from 0
    assert difference["verdict"] == "batch_norm=true > batch_norm=false"
    speedup = bn_arm["speedup_vs_baseline"]
    assert speedup["is_lower_bound"] is True  # no seed without BN reached 0.9 in its 200 steps
    assert speedup["estimate"]["value"] == pytest.approx(200 / 30)
    assert speedup["estimate"]["ci95"] == pytest.approx([200 / 30, 200 / 30])  # every seed alike
    assert speedup["verdict"] == "batch_norm=true reaches the target in fewer steps than batch_norm=false"


def test_arms_whose_interval_covers_zero_get_no_verdict(client: TestClient, store: Store) -> None:
    first = [
        record_run(store, [0.1, 0.962], dropout=0.0, seed=0),
        record_run(store, [0.1, 0.950], dropout=0.0, seed=1),
    ]
    second = [
        record_run(store, [0.1, 0.946], dropout=0.2, seed=0),
        record_run(store, [0.1, 0.953], dropout=0.2, seed=1),
    ]
    arms = compare(client, [*first, *second], arm="dropout")["arms"]
    other = next(arm for arm in arms["arms"] if arm["value"] == 0.2)
    assert other["final_accuracy_vs_baseline"]["verdict"] == "no detectable difference at n = 2"


def test_arms_that_do_not_fit_the_jobs_are_422_naming_the_parameter(client: TestClient, store: Store) -> None:
    jobs = [
        record_run(store, PLAIN, batch_norm=False, seed=0),
        record_run(store, NORMALIZED, batch_norm=True, seed=0),
        record_run(store, NORMALIZED, batch_norm=True, seed=1, dropout=0.1),
    ]
    for params, field in [
        ({"arm": "dropout", "ids": jobs[:2]}, "arm"),  # one value: no two arms
        ({"arm": "batch_norm", "ids": jobs}, "tune"),  # within BN the jobs also differ in dropout
        ({"arm": "batch_norm", "ids": jobs[:2], "metric": "val_loss"}, "arm"),
        ({"arm": "Batch Norm", "ids": jobs[:2]}, "arm"),
        ({"tune": "dropout", "ids": jobs[:2]}, "arm"),
    ]:
        response = client.get("/v1/compare", params=params)
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == ["query", field]
    assert compare(client, jobs, arm="batch_norm", tune="dropout")["arms"]["tune"] == ["dropout"]
    assert compare(client, jobs[:2])["arms"] is None
