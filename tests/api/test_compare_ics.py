"""`GET /v1/compare` on a migrated SQLite and PostgreSQL database with the normalization kinds and
Santurkar's gradient-based ICS: what differs (layer norm, noisy BN) and each job's ICS per hidden layer,
as JSON and as CSV, with runs written through the store."""

from __future__ import annotations

import csv
import io
import math

import pytest
from fastapi.testclient import TestClient

from core.results import TelemetryRecord
from core.store import Store
from tests.api.recorded_runs import record_run

PLAIN = [0.1, 0.3, 0.45, 0.52, 0.58, 0.61]
NORMALIZED = [0.1, 0.6, 0.85, 0.93, 0.95, 0.97]
NOISE = {"mean_std": 0.5, "scale_std": 1.0}
# The second layer's ‖G − G′‖₂ and cos(G, G′) at steps 0, 20, …: nothing measured at step 0, and one
# probe whose figures were not finite (stored as NULL): the medians are over the three others.
CHANGES = [None, 0.3, 0.1, math.inf, 0.2]
COSINES = [None, 0.5, 0.9, math.nan, 0.7]


def ics_telemetry(changes: list[float | None], cosines: list[float | None]) -> list[TelemetryRecord]:
    """Two hidden layers probed every 20 steps: the first has nothing before it (change 0, cosine 1)."""
    records = []
    for index, (change, cosine) in enumerate(zip(changes, cosines, strict=True)):
        for layer, layer_change, layer_cosine in ((0, 0.0, 1.0), (1, change, cosine)):
            records.append(
                TelemetryRecord(
                    step=20 * index, layer=layer, unit_p15=-1.0, unit_p50=0.0, unit_p85=1.0, p15=-1.0,
                    p50=0.0, p85=1.0, mean=0.0, std=1.0, saturated_fraction=0.1, grad_norm=0.5,
                    ics_gradient_change=None if change is None else layer_change,
                    ics_gradient_cosine=None if cosine is None else layer_cosine,
                )
            )  # fmt: skip
    return records


def test_each_job_has_its_gradient_ics_per_layer_and_noisy_or_layer_norm_show_as_differences(
    client: TestClient, store: Store
) -> None:
    plain = record_run(store, PLAIN, batch_norm=False, name="plain")
    noisy = record_run(store, NORMALIZED, batch_norm=True, bn_noise=NOISE, name="noisy")
    layer = record_run(store, NORMALIZED, batch_norm=False, normalization="layer", name="layer")
    untracked = record_run(store, PLAIN, batch_norm=False, telemetry_every=0, name="untracked")
    store.write_telemetry(plain, ics_telemetry(CHANGES, COSINES))
    store.write_telemetry(noisy, ics_telemetry([None, 2.0, 4.0, 3.0, 1.0], [None, 0.1, 0.2, 0.3, 0.4]))

    response = client.get("/v1/compare", params={"ids": [plain, noisy, layer, untracked], "target": 0.9})
    assert response.status_code == 200, response.text
    rows = {row["id"]: row for row in response.json()["jobs"]}

    first_layer = {"layer": 0, "probes": 4, "median_gradient_change": 0.0, "median_gradient_cosine": 1.0}
    assert rows[plain]["ics"] == [
        first_layer,
        {"layer": 1, "probes": 3, "median_gradient_change": 0.2, "median_gradient_cosine": 0.7},
    ]
    assert rows[noisy]["ics"] == [
        first_layer,
        {"layer": 1, "probes": 4, "median_gradient_change": 2.5, "median_gradient_cosine": 0.25},
    ]
    assert rows[layer]["ics"] == []  # telemetry on, nothing probed yet
    assert rows[untracked]["ics"] is None  # run without telemetry

    # The kinds: layer norm names its normalization, noisy BN its noise; BN on/off stays batch_norm.
    assert rows[layer]["spec_diff"]["normalization"] == "layer"
    assert rows[plain]["spec_diff"]["normalization"] == "none"
    assert rows[noisy]["spec_diff"]["normalization"] == "batch"
    noise = rows[noisy]["spec_diff"]
    assert (noise["bn_noise.mean_std"], noise["bn_noise.scale_std"]) == (0.5, 1.0)
    assert rows[plain]["spec_diff"]["bn_noise.mean_std"] is None

    answer = client.get(
        "/v1/compare", params={"ids": [plain, noisy, layer, untracked], "target": 0.9, "format": "csv"}
    )
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    lines = {line["id"]: line for line in csv.DictReader(io.StringIO(answer.text))}
    assert float(lines[plain]["ics.layer1.median_gradient_change"]) == pytest.approx(0.2)
    assert float(lines[noisy]["ics.layer1.median_gradient_cosine"]) == pytest.approx(0.25)
    assert (lines[plain]["ics.layer0.probes"], lines[plain]["ics.layer1.probes"]) == ("4", "3")
    assert lines[untracked]["ics.layer1.median_gradient_change"] == ""  # no telemetry: empty cells
    assert lines[layer]["spec.normalization"] == "layer" and lines[noisy]["spec.bn_noise.scale_std"] == "1.0"


def test_a_comparison_of_bn_on_and_off_still_names_only_batch_norm(client: TestClient, store: Store) -> None:
    plain = record_run(store, PLAIN, batch_norm=False)
    normalized = record_run(store, NORMALIZED, batch_norm=True)
    rows = client.get("/v1/compare", params={"ids": [plain, normalized]}).json()["jobs"]
    assert {row["id"]: row["spec_diff"] for row in rows} == {
        plain: {"batch_norm": False},
        normalized: {"batch_norm": True},
    }
