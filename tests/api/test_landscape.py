"""`/v1/jobs/{id}/landscape` and its plot, on SQLite and PostgreSQL: jobs submitted through the API and
trained in-process by the worker's delivery function (the real training core, no Celery), so what the
endpoint serves is checked against what the core reports for the same spec."""

from __future__ import annotations

import io
import math
import statistics
import uuid
import xml.etree.ElementTree as ElementTree
from dataclasses import asdict
from typing import Any

import matplotlib.colors
import matplotlib.image
import numpy as np
import pytest
from fastapi.testclient import TestClient

from core.ml import run
from core.plots import LANDSCAPE_COLORS
from core.results import Callbacks, LandscapeRecord
from core.settings import Settings
from core.spec import JobSpec
from core.store import Store
from tests.api.conftest import submit
from worker.training import train_job

LANDSCAPE_SPEC: dict[str, Any] = {"steps": 60, "eval_every": 20, "landscape_every": 20, "checkpoint_every": 0}


def trained(client: TestClient, store: Store, **changes: Any) -> dict[str, Any]:
    """A job submitted through the API and trained to the end, as a worker would."""
    job = submit(client, **{**LANDSCAPE_SPEC, **changes})
    settings = Settings(database_url=store.url, heartbeat_seconds=0.2, lease_seconds=5.0, torch_threads=1)
    assert train_job(store, job["id"], settings).status == "succeeded"
    return job


def core_records(spec: dict[str, Any]) -> list[LandscapeRecord]:
    """What the training core itself reports for `spec`."""
    records: list[LandscapeRecord] = []
    run(
        JobSpec.model_validate(spec),
        Callbacks(on_landscape=records.extend),
        settings=Settings(torch_threads=1),
    )
    return records


def test_the_endpoint_serves_every_probe_the_core_took(client: TestClient, store: Store) -> None:
    job = trained(client, store)
    response = client.get(f"/v1/jobs/{job['id']}/landscape")
    assert response.status_code == 200
    body = response.json()
    assert body["job_id"] == job["id"]
    assert [probe["step"] for probe in body["probes"]] == [20, 40, 60]
    assert body["probes"] == [asdict(record) for record in core_records(job["spec"])]
    for probe in body["probes"]:
        assert probe["step_sizes"] == [0.05, 0.1, 0.2, 0.4]  # 1/2, 1, 2 and 4 × the learning rate 0.1
        # Computed on the device in float32, hence approx.
        assert probe["loss_range"] == pytest.approx(max(probe["losses"]) - min(probe["losses"]), rel=1e-6)
        relative_change = probe["gradient_predictiveness"] / probe["grad_norm"]
        assert probe["relative_gradient_change"] == pytest.approx(relative_change, rel=1e-6)


def test_a_job_without_probes_has_none(client: TestClient, store: Store) -> None:
    job = trained(client, store, landscape_every=0)
    assert client.get(f"/v1/jobs/{job['id']}/landscape").json() == {"job_id": job["id"], "probes": []}


def test_an_unknown_job_is_404(client: TestClient) -> None:
    for job_id in ("0" * 32, "not-a-uuid"):
        response = client.get(f"/v1/jobs/{job_id}/landscape")
        assert response.status_code == 404 and job_id in response.json()["detail"]


def test_non_finite_figures_are_null(client: TestClient, store: Store) -> None:
    job = submit(client)
    store.write_landscape(
        job["id"],
        [
            LandscapeRecord(
                step=10,
                step_sizes=[0.05, 0.1, 0.2, 0.4],
                losses=[2.3, 9.1, math.inf, math.nan],
                loss_range=math.nan,
                gradient_predictiveness=math.inf,
                beta_smoothness=math.nan,
                grad_norm=1.5,
                relative_gradient_change=math.inf,
            )
        ],
    )
    (probe,) = client.get(f"/v1/jobs/{job['id']}/landscape").json()["probes"]
    assert probe["losses"] == [2.3, 9.1, None, None]
    assert probe["grad_norm"] == 1.5
    for name in ("loss_range", "gradient_predictiveness", "beta_smoothness", "relative_gradient_change"):
        assert probe[name] is None


def decoded_png(data: bytes) -> np.ndarray:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    pixels = matplotlib.image.imread(io.BytesIO(data), format="png")
    assert isinstance(pixels, np.ndarray)
    return pixels


def has_color(pixels: np.ndarray, color: str) -> bool:
    """Whether some pixels are drawn in exactly this (opaque) color: a line or marker of one job."""
    red, green, blue = matplotlib.colors.to_rgb(color)
    distance = np.abs(pixels[..., :3] - np.array([red, green, blue])).max(axis=-1)
    return int((distance < 0.02).sum()) > 50


def test_the_plot_draws_each_job_in_the_three_panels_no_bn_first(client: TestClient, store: Store) -> None:
    normalized = trained(client, store, batch_norm=True, name="normalized")
    plain = trained(client, store, batch_norm=False, name="plain")
    one = client.get(f"/v1/jobs/{normalized['id']}/plots/landscape")
    assert one.status_code == 200 and one.headers["content-type"] == "image/png"
    alone = decoded_png(one.content)
    assert alone.shape == (480, 1500, 4)  # three panels side by side
    first, second = LANDSCAPE_COLORS[:2]
    assert has_color(alone, first) and not has_color(alone, second)
    pair = client.get(f"/v1/jobs/{normalized['id']}/plots/landscape", params={"compare_with": plain["id"]})
    assert pair.status_code == 200
    both = decoded_png(pair.content)
    assert has_color(both, first) and has_color(both, second)
    svg = client.get(
        f"/v1/jobs/{normalized['id']}/plots/landscape", params={"compare_with": plain["id"], "format": "svg"}
    )
    assert svg.headers["content-type"] == "image/svg+xml"
    text = svg.text
    assert ElementTree.fromstring(text).tag == "{http://www.w3.org/2000/svg}svg"
    for title in ("(a) loss landscape", "(b) gradient predictiveness", "(c) effective β-smoothness"):
        assert title in text
    # Whichever job the URL names first, the one without normalization is drawn first (and listed first).
    assert text.index("no normalization, sigmoid, lr 0.1, seed 0: plain") < text.index(
        "batch norm, sigmoid, lr 0.1, seed 0: normalized"
    )


def test_the_plot_needs_probes_and_known_jobs(client: TestClient, store: Store) -> None:
    silent = trained(client, store, landscape_every=0)
    response = client.get(f"/v1/jobs/{silent['id']}/plots/landscape")
    assert response.status_code == 404 and "landscape_every is 0" in response.json()["detail"]
    missing = uuid.uuid4().hex
    assert client.get(f"/v1/jobs/{missing}/plots/landscape").status_code == 404
    response = client.get(f"/v1/jobs/{silent['id']}/plots/landscape", params={"compare_with": missing})
    assert response.status_code == 404 and missing in response.json()["detail"]


def test_compare_gives_each_job_its_landscape_against_the_baseline(client: TestClient, store: Store) -> None:
    plain = trained(client, store, batch_norm=False, name="plain")
    normalized = trained(client, store, batch_norm=True, name="normalized", landscape_every=10)
    unprobed = trained(client, store, batch_norm=True, name="unprobed", landscape_every=0)
    ids = [plain["id"], normalized["id"], unprobed["id"]]
    response = client.get("/v1/compare", params={"ids": ids, "baseline": plain["id"]})
    assert response.status_code == 200
    rows = {row["id"]: row for row in response.json()["jobs"]}

    # Expected from what the landscape endpoint serves, on the steps both jobs probed (20, 40, 60).
    def by_step(job: dict[str, Any]) -> dict[int, dict[str, Any]]:
        body = client.get(f"/v1/jobs/{job['id']}/landscape").json()
        return {probe["step"]: probe for probe in body["probes"]}

    mine, theirs = by_step(normalized), by_step(plain)
    shared = sorted(mine.keys() & theirs.keys())
    assert shared == [20, 40, 60] and len(mine) == 6
    landscape = rows[normalized["id"]]["landscape"]
    assert set(landscape) == {
        "loss_range",
        "gradient_predictiveness",
        "beta_smoothness",
        "relative_gradient_change",
    }
    for quantity, ratio in landscape.items():
        pairs = [(mine[step][quantity], theirs[step][quantity]) for step in shared]
        assert ratio["probes"] == len(pairs)
        expected_ratio = statistics.geometric_mean([job / baseline for job, baseline in pairs])
        assert ratio["geometric_mean_ratio"] == pytest.approx(expected_ratio, rel=1e-9)
        smoother = sum(job < baseline for job, baseline in pairs) / len(pairs)
        assert ratio["smoother_fraction"] == pytest.approx(smoother)
    baseline_landscape = rows[plain["id"]]["landscape"]
    assert all(ratio["geometric_mean_ratio"] == 1.0 for ratio in baseline_landscape.values())
    assert all(ratio["smoother_fraction"] == 0.0 for ratio in baseline_landscape.values())
    assert rows[unprobed["id"]]["landscape"] is None
