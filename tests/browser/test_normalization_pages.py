"""The dashboard in Chromium with the normalization kinds and Santurkar's gradient-based ICS: a job's page
charts the ICS per hidden layer and names its normalization, compare lists each layer's ICS, and the
submit form sends the kind chosen (group norm's groups, noisy BN's parameters)."""

from __future__ import annotations

import math
import re
import uuid
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Screenshot
from tests.fixtures.service import NEVER_STARTS_SPEC, TINY_SPEC, RunningService

pytestmark = pytest.mark.browser

JOB_URL = re.compile(r"#/jobs/[0-9a-f]{32}$")


def finite(values: list[Any]) -> int:
    return sum(1 for value in values if isinstance(value, float | int) and math.isfinite(value))


def test_the_job_page_charts_the_gradient_ics_per_layer_and_compare_lists_it(
    sqlite_service: RunningService, page: Page, screenshot: Screenshot
) -> None:
    spec = {
        **TINY_SPEC,
        "name": f"layer-norm-{uuid.uuid4().hex[:6]}",
        "architecture": {"kind": "mlp", "hidden": [16, 16], "activation": "sigmoid"},
        "batch_norm": False,
        "normalization": "layer",
        "telemetry_every": 10,
    }
    job_id = sqlite_service.submit(spec)
    assert sqlite_service.wait_until_finished(job_id)["status"] == "succeeded"
    layers = httpx.get(f"{sqlite_service.url}/v1/jobs/{job_id}/telemetry").json()["layers"]
    assert len(layers) == 2 and finite(layers[1]["ics_gradient_change"]) > 0

    page.goto(f"{sqlite_service.url}/#/jobs/{job_id}")
    expect(page.locator("#job-normalization")).to_have_attribute("data-kind", "layer")
    expect(page.locator("#job-normalization")).to_have_text("layer norm")
    for chart, field in (
        ("#ics-change-chart", "ics_gradient_change"),
        ("#ics-cosine-chart", "ics_gradient_cosine"),
    ):
        expect(page.locator(f"{chart} path.curve")).to_have_count(2)  # one line per hidden layer
        for layer in layers:
            curve = page.locator(f'{chart} path.curve[data-label="layer {layer["layer"] + 1}"]')
            expect(curve).to_have_attribute("data-points", str(finite(layer[field])))
    screenshot(page, "job-ics")

    page.goto(f"{sqlite_service.url}/#/compare?ids={job_id}")
    row = page.locator(f'#compare-table tr[data-job-id="{job_id}"]')
    ics = httpx.get(f"{sqlite_service.url}/v1/compare", params={"ids": job_id}).json()["jobs"][0]["ics"]
    expect(row.locator("td.ics-change span")).to_have_attribute(
        "title", re.compile(rf"layer 2: .* \(median of {ics[1]['probes']} probes\)")
    )
    assert len(row.locator("td.ics-cosine").inner_text().split(" · ")) == 2
    screenshot(page, "compare-ics")


def test_the_submit_form_sends_the_normalization_kind_chosen(
    sqlite_service: RunningService, page: Page
) -> None:
    chosen: list[dict[str, Any]] = []
    for kind, fill in (("group", {"groups": "4"}), ("batch", {"bn_noise.mean_std": "0.3"})):
        page.goto(f"{sqlite_service.url}/#/submit")
        page.locator('#submit-form [name="normalization"]').select_option(kind)
        page.locator("#submit-form details.group summary").click()  # "More": the noise parameters
        # Group norm's groups show only for group, noisy BN's parameters only for batch.
        expect(page.locator('[data-field="groups"]')).to_be_visible(visible=kind == "group")
        expect(page.locator('[data-field="bn_noise.mean_std"]')).to_be_visible(visible=kind == "batch")
        for field, value in {**fill, "device": NEVER_STARTS_SPEC["device"]}.items():
            page.locator(f'#submit-form [name="{field}"]').fill(value)
        page.click("#submit-job")
        page.wait_for_url(JOB_URL)
        chosen.append(sqlite_service.job(page.url.rsplit("/", 1)[1]))
    group, noisy = (job["spec"] for job in chosen)
    assert (group["normalization"], group["groups"], group["batch_norm"], group["bn_noise"]) == (
        "group",
        4,
        False,
        None,
    )
    assert (noisy["normalization"], noisy["batch_norm"]) == ("batch", True)
    assert noisy["bn_noise"] == {"mean_std": 0.3, "scale_std": 0.5}
    expect(page.locator("#job-normalization")).to_contain_text("batch norm with noise")
    for job in chosen:
        httpx.post(f"{sqlite_service.url}/v1/jobs/{job['id']}/cancel").raise_for_status()


def test_a_sweep_over_the_kinds_and_noise_labels_its_heatmap_and_points_in_words(
    sqlite_service: RunningService, page: Page
) -> None:
    request = {
        "name": f"kinds-{uuid.uuid4().hex[:6]}",
        "base": NEVER_STARTS_SPEC,  # queued for a GPU no worker has: the labels need no results
        "grid": {"bn_noise": [None, {"mean_std": 0.5, "scale_std": 1.0}], "normalization": ["batch"]},
        "seeds": [0],
    }
    created = httpx.post(f"{sqlite_service.url}/v1/sweeps", json=request, timeout=10)
    assert created.status_code == 201, created.text
    sweep_id = created.json()["id"]
    page.goto(f"{sqlite_service.url}/#/sweeps/{sweep_id}")
    headers = page.locator("#sweep-heatmap thead th")
    expect(headers).to_have_text(["normalization \\ bn_noise", "off", "mean_std=0.5, scale_std=1"])
    expect(page.locator("#sweep-heatmap tbody th")).to_have_text(["batch"])  # the kind, not "batch"
    expect(page.locator("#sweep-points tbody tr td:first-child")).to_have_text(
        ["off", "mean_std=0.5, scale_std=1"]
    )
    httpx.post(f"{sqlite_service.url}/v1/sweeps/{sweep_id}/cancel", timeout=10).raise_for_status()
