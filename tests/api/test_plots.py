"""The covariate-shift pictures of a job beside others: the paper's Fig. 1(b,c) bands and Santurkar et al.'s
gradient-based ICS, each job named by its normalization kind (none, batch, noisy BN, layer, group) and drawn
in that order whichever job the URL names first; PNG or SVG; 404 and 422 answers a user can act on."""

from __future__ import annotations

import io
import uuid
import xml.etree.ElementTree as ElementTree
from typing import Any

import matplotlib.image
import pytest
from fastapi.testclient import TestClient

from core.store import Store
from tests.api.recorded_runs import record_run, record_telemetry

NOISY = {"bn_noise": {"mean_std": 0.5, "scale_std": 0.5}}


def decoded_png(content: bytes) -> Any:
    pixels = matplotlib.image.imread(io.BytesIO(content), format="png")
    assert pixels.ndim == 3 and pixels.shape[2] == 4
    return pixels


def normalized_run(store: Store, normalization: str = "batch", **spec: Any) -> str:
    """A finished job with this normalization (the recorded runs' base spec says batch_norm: true)."""
    return record_run(
        store, [0.1, 0.5], normalization=normalization, batch_norm=normalization == "batch", **spec
    )


def job_with_ics(store: Store, **spec: Any) -> str:
    job_id = normalized_run(store, **spec)
    record_telemetry(store, job_id, spread=1.0, layers=3, ics_change=0.2)
    return job_id


# --- Fig. 1(b,c) --------------------------------------------------------------------------------------


def test_the_ics_picture_shows_one_job_or_more_side_by_side(client: TestClient, store: Store) -> None:
    plain = normalized_run(store, "none")
    normalized = normalized_run(store, "batch")
    record_telemetry(store, plain, spread=3.0)
    record_telemetry(store, normalized, spread=1.0)
    one = client.get(f"/v1/jobs/{plain}/plots/ics")
    assert one.status_code == 200 and one.headers["content-type"] == "image/png"
    two = client.get(f"/v1/jobs/{normalized}/plots/ics", params={"compare_with": plain})
    assert two.status_code == 200
    assert decoded_png(two.content).shape[1] > 1.8 * decoded_png(one.content).shape[1]
    svg = client.get(f"/v1/jobs/{normalized}/plots/ics", params={"compare_with": plain, "format": "svg"}).text
    # The paper's order: without normalization on the left, whichever job the URL names first.
    assert svg.index("no normalization, seed 0:") < svg.index("batch norm, seed 0:")
    assert "layer 1" in svg  # the last hidden layer
    assert "with BN" not in svg and "without BN" not in svg


def test_the_ics_picture_names_every_normalization_kind_in_order(client: TestClient, store: Store) -> None:
    kinds = {
        "group": normalized_run(store, "group", groups=4),
        "layer": normalized_run(store, "layer"),
        "noisy": normalized_run(store, "batch", **NOISY),
        "batch": record_run(store, [0.1, 0.9], batch_norm=True),  # said the old way
        "none": record_run(store, [0.1, 0.9], batch_norm=False),
    }
    for job_id in kinds.values():
        record_telemetry(store, job_id, spread=1.0)
    first, *others = kinds.values()
    response = client.get(f"/v1/jobs/{first}/plots/ics", params={"compare_with": others, "format": "svg"})
    assert response.status_code == 200
    labels = [
        "no normalization,",
        "batch norm,",
        "noisy BN (m 0.5, s 0.5),",
        "layer norm,",
        "group norm (4 groups),",
    ]
    positions = [response.text.index(label) for label in labels]
    assert positions == sorted(positions)


def test_the_ics_picture_needs_telemetry_and_known_jobs(client: TestClient, store: Store) -> None:
    silent = record_run(store, [0.1, 0.5], telemetry_every=0)
    response = client.get(f"/v1/jobs/{silent}/plots/ics")
    assert response.status_code == 404 and "telemetry_every is 0" in response.json()["detail"]
    assert client.get(f"/v1/jobs/{uuid.uuid4().hex}/plots/ics").status_code == 404
    missing = uuid.uuid4().hex
    response = client.get(f"/v1/jobs/{silent}/plots/ics", params={"compare_with": missing})
    assert response.status_code == 404 and missing in response.json()["detail"]


# --- Santurkar's gradient-based ICS ---------------------------------------------------------------------


def test_the_gradient_ics_picture_is_a_column_per_job_png_or_svg(client: TestClient, store: Store) -> None:
    plain = job_with_ics(store, normalization="none", name="plain")
    normalized = job_with_ics(store, normalization="batch", name="normalized")
    noisy = job_with_ics(store, normalization="batch", name="noisy", **NOISY)
    path = f"/v1/jobs/{noisy}/plots/ics-gradient"
    one = client.get(path)
    assert one.status_code == 200 and one.headers["content-type"] == "image/png"
    three = client.get(path, params={"compare_with": [normalized, plain]})
    assert three.status_code == 200
    assert decoded_png(three.content).shape[1] > 2.6 * decoded_png(one.content).shape[1]
    svg = client.get(path, params={"compare_with": [normalized, plain], "format": "svg"})
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    text = svg.text
    assert ElementTree.fromstring(text).tag.endswith("svg")
    # None, batch, noisy BN from left to right, whatever the order asked in.
    assert text.index("no normalization, seed 0: plain") < text.index("batch norm, seed 0: normalized")
    assert text.index("batch norm, seed 0: normalized") < text.index("noisy BN (m 0.5, s 0.5), seed 0: noisy")
    assert "‖G − G′‖₂" in text and "cos(G, G′)" in text
    # Layers 1 and 2 are drawn; layer 0 (nothing precedes it: change 0, cosine 1) is left out.
    assert "layer 1" in text and "layer 2" in text and "layer 0" not in text


def test_the_gradient_ics_picture_of_a_one_layer_net_still_draws_its_layer(
    client: TestClient, store: Store
) -> None:
    job_id = record_run(store, [0.1, 0.5], architecture={"kind": "mlp", "hidden": [16]})
    record_telemetry(store, job_id, spread=1.0, layers=1, ics_change=0.2)
    response = client.get(f"/v1/jobs/{job_id}/plots/ics-gradient", params={"format": "svg"})
    assert response.status_code == 200 and "layer 0" in response.text


def test_the_gradient_ics_picture_says_why_it_has_nothing_to_draw(client: TestClient, store: Store) -> None:
    silent = record_run(store, [0.1, 0.5], telemetry_every=0)
    response = client.get(f"/v1/jobs/{silent}/plots/ics-gradient")
    assert response.status_code == 404 and "telemetry_every is 0" in response.json()["detail"]
    older = record_run(store, [0.1, 0.5])
    record_telemetry(store, older, spread=1.0)  # telemetry from before the measure existed
    response = client.get(f"/v1/jobs/{older}/plots/ics-gradient")
    assert response.status_code == 404 and "without it" in response.json()["detail"]
    assert client.get(f"/v1/jobs/{uuid.uuid4().hex}/plots/ics-gradient").status_code == 404
    assert client.get("/v1/jobs/not-a-job/plots/ics-gradient").status_code == 404
    measured = job_with_ics(store)
    missing = uuid.uuid4().hex
    response = client.get(f"/v1/jobs/{measured}/plots/ics-gradient", params={"compare_with": missing})
    assert response.status_code == 404 and missing in response.json()["detail"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"compare_with": "x" * 65}, ["query", "compare_with", 0]),
        ({"compare_with": [uuid.uuid4().hex for _ in range(6)]}, ["query", "compare_with"]),
        ({"format": "jpg"}, ["query", "format"]),
    ],
    ids=["id too long", "too many jobs", "unknown format"],
)
@pytest.mark.parametrize("picture", ["ics", "ics-gradient", "landscape"])
def test_a_bad_query_is_a_422_naming_the_field(
    client: TestClient, store: Store, picture: str, params: dict[str, Any], field: list[Any]
) -> None:
    measured = job_with_ics(store)
    response = client.get(f"/v1/jobs/{measured}/plots/{picture}", params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == field


def test_the_gradient_ics_route_is_documented(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/v1/jobs/{job_id}/plots/ics-gradient"]["get"]
    assert "Santurkar" in operation["summary"]
    assert {"200", "404", "422"} <= set(operation["responses"])
    assert set(operation["responses"]["200"]["content"]) == {"image/png", "image/svg+xml"}
    parameters = {parameter["name"] for parameter in operation["parameters"]}
    assert {"job_id", "compare_with", "format"} <= parameters
