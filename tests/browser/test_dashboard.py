"""The dashboard in headless Chromium against the real running service (uvicorn + a Celery worker, the
embedded mode): what a user sees when they submit, watch, compare, browse a sweep, cancel, and when the
service wants an API key. Expected figures come from the API's own answers, never from constants.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from playwright.sync_api import Dialog, Page, expect

from tests.browser.conftest import Screenshot
from tests.fixtures.requirements import require
from tests.fixtures.service import (
    NEVER_STARTS_SPEC,
    TERMINAL_STATUSES,
    TINY_SPEC,
    RunningService,
    start_api,
    stop_api,
)
from tests.fixtures.worker import RunningWorker

pytestmark = pytest.mark.browser

JOB_URL = re.compile(r"#/jobs/[0-9a-f]{32}$")
WATCH_TIMEOUT_SECONDS = 90.0
# The paper's digits net (3×100 sigmoid, SGD 0.1, batch 60) evaluated every 10 steps: with BN it reaches
# 90% validation accuracy within 200 steps, without BN it does not (DESIGN: steps 60–80 vs never in 2000).
PAPER_NET: dict[str, Any] = {
    "architecture": {"kind": "mlp", "hidden": [100, 100, 100], "activation": "sigmoid"},
    "learning_rate": 0.1,
    "dropout": 0.0,
    "batch_size": 60,
    "steps": 200,
    "eval_every": 10,
    "target_accuracy": 0.9,
    "device": "cpu",
}
# What the page shows of a job while it trains, read in one go.
READ_JOB_PAGE = """() => ({
  status: document.querySelector("#job-status [data-status]")?.dataset.status ?? null,
  step: Number(document.querySelector("#job-progress .progress")?.dataset.step ?? -1),
  curve: document.querySelector('#accuracy-chart .curve[data-label="validation"]')?.getAttribute("d") ?? "",
})"""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def points_in(path_data: str) -> int:
    """How many points an SVG path's `d` draws (each starts with M or L)."""
    return len(re.findall(r"[ML]-?\d", path_data))


def stored_series(service: RunningService, job_id: str, name: str) -> dict[str, list[Any]]:
    response = httpx.get(f"{service.url}/v1/jobs/{job_id}/metrics", params={"name": name}, timeout=10)
    response.raise_for_status()
    series: dict[str, list[Any]] = response.json()["series"][name]
    return series


def number_in(text: str) -> float:
    match = re.search(r"\d+(\.\d+)?", text)
    assert match, f"no number in {text!r}"
    return float(match.group())


def test_a_job_submitted_through_the_form_trains_live_and_finishes(
    sqlite_service: RunningService, page: Page, screenshot: Screenshot
) -> None:
    name = unique("watched")
    page.goto(f"{sqlite_service.url}/#/submit")
    # A net slow enough on one thread (a few seconds) to watch its progress and curves grow.
    typed = {
        "name": name,
        "architecture.hidden": "512, 512, 512",
        "batch_size": "512",
        "steps": "200",
        "eval_every": "5",
        "target_accuracy": "0.5",
        "telemetry_every": "20",
        "device": "cpu",
    }
    for field, value in typed.items():
        page.locator(f'#submit-form [name="{field}"]').fill(value)
    page.click("#submit-job")
    page.wait_for_url(JOB_URL)
    job_id = page.url.rsplit("/", 1)[1]
    spec = sqlite_service.job(job_id)["spec"]
    assert (spec["name"], spec["architecture"]["hidden"], spec["eval_every"]) == (name, [512, 512, 512], 5)

    observed: list[dict[str, Any]] = []
    deadline = time.monotonic() + WATCH_TIMEOUT_SECONDS
    while not observed or observed[-1]["status"] not in TERMINAL_STATUSES:
        assert time.monotonic() < deadline, (
            f"the page still shows {observed[-1]} after {WATCH_TIMEOUT_SECONDS} s"
        )
        observed.append(page.evaluate(READ_JOB_PAGE))
        time.sleep(0.05)

    assert observed[-1]["status"] == "succeeded"
    while_running = [state for state in observed if state["status"] == "running"]
    steps_seen = [state["step"] for state in while_running]
    assert steps_seen == sorted(steps_seen), "progress never goes backwards"
    assert any(0 < step < 200 for step in steps_seen), f"no progress shown mid-way: {sorted(set(steps_seen))}"
    assert len(set(steps_seen)) >= 2, f"progress did not advance: {sorted(set(steps_seen))}"
    assert any(points_in(state["curve"]) >= 2 for state in while_running), "no curve drawn while it trained"

    expect(page.locator("#job-progress .progress")).to_have_attribute("data-step", "200")
    stored = stored_series(sqlite_service, job_id, "val_accuracy")
    curve = page.locator('#accuracy-chart path.curve[data-label="validation"]')
    expect(curve).to_have_attribute("data-points", str(len(stored["steps"])))
    assert points_in(curve.get_attribute("d") or "") == len(stored["steps"]) == 200 // 5
    expect(page.locator("#telemetry-bands figure")).to_have_count(3)  # one band chart per hidden layer
    expect(page.locator("#telemetry-bands path.band")).to_have_count(3)
    expect(page.locator("#job-execution")).to_have_attribute("data-mode", "separate")
    screenshot(page, "job")


def test_rejected_fields_show_the_api_errors_next_to_them(
    sqlite_service: RunningService, page: Page, screenshot: Screenshot
) -> None:
    page.goto(f"{sqlite_service.url}/#/submit")
    page.fill('[name="learning_rate"]', "-1")
    page.fill('[name="steps"]', "100")
    page.fill('[name="eval_every"]', "500")
    page.fill('[name="architecture.hidden"]', "100, wide")
    with page.expect_response(f"{sqlite_service.url}/v1/jobs") as answer:
        page.click("#submit-job")
    assert answer.value.status == 422
    detail = answer.value.json()["detail"]

    slot_of_field = {
        ("body", "learning_rate"): "#error-learning_rate",
        ("body", "eval_every"): "#error-eval_every",
        ("body", "architecture", "mlp", "hidden", 1): "#error-architecture-hidden",
    }
    assert {tuple(error["loc"]) for error in detail} == set(slot_of_field)
    for error in detail:
        slot = page.locator(slot_of_field[tuple(error["loc"])])
        expect(slot).to_be_visible()
        expect(slot).to_contain_text(error["msg"].removeprefix("Value error, "))
    expect(page.locator(".field-error:not([hidden])")).to_have_count(len(slot_of_field))
    expect(page.locator('[name="learning_rate"]')).to_have_attribute("aria-invalid", "true")
    assert page.url.endswith("#/submit"), "a rejected job does not leave the form"
    screenshot(page, "submit-errors")


def test_compare_two_jobs_shows_their_curves_and_the_speedup(
    sqlite_service: RunningService, page: Page, screenshot: Screenshot
) -> None:
    with_bn = sqlite_service.submit({**PAPER_NET, "batch_norm": True, "name": unique("bn-sigmoid")})
    without_bn = sqlite_service.submit({**PAPER_NET, "batch_norm": False, "name": unique("plain-sigmoid")})
    for job_id in (with_bn, without_bn):
        sqlite_service.wait_until_finished(job_id)

    page.goto(f"{sqlite_service.url}/#/jobs")
    for job_id in (with_bn, without_bn):
        page.locator(f'#jobs-table tr[data-job-id="{job_id}"] .select-job').check()
    page.click("#compare-selected")
    expect(page.locator("#compare-table tbody tr")).to_have_count(2)
    # Measure against the job without BN, chosen in the page's own form.
    page.click(".picker summary")
    page.select_option("#compare-baseline", without_bn)
    page.click("#compare-submit")
    page.wait_for_url(re.compile(f"baseline={without_bn}"))
    ids = parse_qs(page.url.split("?", 1)[1])["ids"][0].split(",")
    assert set(ids) == {with_bn, without_bn}

    response = httpx.get(
        f"{sqlite_service.url}/v1/compare", params={"ids": ids, "baseline": without_bn}, timeout=10
    )
    response.raise_for_status()
    comparison = response.json()
    rows = {row["id"]: row for row in comparison["jobs"]}
    assert rows[with_bn]["speedup_vs_baseline"] is not None, "with BN the net reached the target"
    for job_id, row in rows.items():
        cell = page.locator(f'#compare-table tr[data-job-id="{job_id}"] td.speedup')
        if job_id == without_bn:
            expect(cell).to_contain_text("baseline")
            continue
        expect(cell).to_contain_text("×")
        text = cell.inner_text()
        assert text.startswith("≥") == row["speedup_is_lower_bound"], text
        assert number_in(text) == pytest.approx(row["speedup_vs_baseline"], abs=0.05)

    curves = page.locator("#compare-chart path.curve")
    expect(curves).to_have_count(2)
    for index, row in enumerate(comparison["jobs"]):  # one curve per compared job, in the table's order
        expected_points = sum(value is not None for value in comparison["series"][row["id"]]["values"])
        assert points_in(curves.nth(index).get_attribute("d") or "") == expected_points > 0
    expect(page.locator("#compare-chart line.guide")).to_have_attribute(
        "data-value", str(comparison["target"])
    )
    screenshot(page, "compare")


def status_summary(counts: dict[str, int]) -> str:
    """Jobs counted by status as the sweep page writes them: finished outcomes first."""
    order = ["succeeded", "diverged", "failed", "cancelled", "running", "queued"]
    return " · ".join(f"{counts[status]} {status}" for status in order if counts[status])


def test_a_sweep_shows_its_heatmap_its_grid_points_its_fused_groups_and_its_jobs(
    sqlite_service: RunningService, page: Page, screenshot: Screenshot
) -> None:
    # Two fused groups: the two BN jobs (bnlab's paper BN layer), the two without BN.
    request = {
        "name": unique("lr-x-bn"),
        "base": {**TINY_SPEC, "target_accuracy": 0.5, "bn_implementation": "bnlab"},
        "grid": {"learning_rate": [0.1, 1.0], "batch_norm": [True, False]},
        "seeds": [0],
        "execution": "fused",
    }
    created = httpx.post(f"{sqlite_service.url}/v1/sweeps", json=request, timeout=10)
    assert created.status_code == 201, created.text
    sweep_id, job_ids = created.json()["id"], created.json()["job_ids"]

    page.goto(f"{sqlite_service.url}/#/sweeps/{sweep_id}")
    for job_id in job_ids:
        sqlite_service.wait_until_finished(job_id)
    done_cells = page.locator("#sweep-points tbody tr td:nth-child(4)")
    expect(done_cells).to_have_text(["1 / 1"] * 4)
    # The progress bar counts the training steps of all jobs, then says every job is done.
    total = 4 * TINY_SPEC["steps"]
    expect(page.locator("#sweep-progress .progress-text")).to_have_text(f"{total} / {total}")
    expect(page.locator("#sweep-rate")).to_have_text("4 / 4 jobs done")
    sweep = httpx.get(f"{sqlite_service.url}/v1/sweeps/{sweep_id}", timeout=10).json()
    # The heatmap: learning rate across, batch norm down; each cell's tooltip says what its mean is over.
    cells = page.locator("#sweep-heatmap td.heatmap-cell")
    expect(cells).to_have_count(4)
    first = sweep["points"][0]
    tooltip = cells.first.get_attribute("title") or ""
    assert tooltip.startswith("learning_rate=0.1, batch_norm=true: final accuracy n = 1")
    assert ("no interval below 2 seeds" in tooltip) == (first["final_accuracy"]["ci95"] is None)
    # The curves: one mean line per grid point (one seed each: no band to shade).
    expect(page.locator("#sweep-curves path.curve")).to_have_count(4)
    expect(page.locator("#sweep-curves path.band")).to_have_count(0)
    # The arms: batch_norm by default, against the arm without it, each at its best learning rate.
    arms = page.locator("#sweep-arms tbody tr")
    expect(arms).to_have_count(2)
    expect(arms.nth(1).locator("td").first).to_have_text("batch_norm=false (baseline)")
    expect(page.locator("#sweep-arms .verdicts li").first).to_contain_text("batch_norm=true")
    shown = page.locator("#sweep-points tbody tr")
    for index, point in enumerate(sweep["points"]):
        final_text = shown.nth(index).locator("td:nth-child(7)").inner_text()  # after 2 axes and 4 counts
        mean = point["final_accuracy"]["mean"]
        if mean is None:  # every seed of the point diverged
            assert final_text == "—"
        else:
            assert number_in(final_text) == pytest.approx(mean, abs=5e-4)

    execution = sweep["execution"]
    groups = execution["fused_groups"]
    assert [group["size"] for group in groups] == [2, 2] and execution["separate_job_ids"] == []
    for group in groups:
        group_row = page.locator(f'#sweep-groups tbody tr[data-group-id="{group["id"]}"]')
        expect(group_row.locator("td")).to_have_text(
            [
                f"fused group {group['id'][:8]}",
                "2",
                status_summary(group["status_counts"]),
                "compare its jobs",
            ]
        )
    expect(page.locator('#sweep-groups tbody tr[data-execution="separate"]')).to_have_count(0)
    group = groups[0]
    screenshot(page, "sweep")

    # The list of sweeps counts each one's jobs by status, fused groups and separate jobs together.
    page.goto(f"{sqlite_service.url}/#/sweeps")
    listed_sweep = page.locator(f'#sweeps-table tr[data-sweep-id="{sweep_id}"]')
    expect(listed_sweep.locator("td.sweep-statuses")).to_have_text(status_summary(sweep["status_counts"]))
    page.goto(f"{sqlite_service.url}/#/sweeps/{sweep_id}")

    # By role and exact name: the group table's heading and "compare its jobs" links also say "its jobs".
    page.get_by_role("link", name="Its jobs", exact=True).click()
    expect(page.locator("#sweep-filter")).to_have_value(sweep_id)
    listed = page.locator("#jobs-table tbody tr[data-job-id]")
    expect(listed).to_have_count(len(job_ids))
    assert {row.get_attribute("data-job-id") for row in listed.all()} == set(job_ids)

    page.goto(f"{sqlite_service.url}/#/jobs/{group['job_ids'][0]}")
    shown_execution = page.locator("#job-execution")
    expect(shown_execution).to_have_attribute("data-mode", "fused")
    expect(shown_execution).to_have_text(
        f"fused group {group['id'][:8]}: 2 jobs trained together as stacked models"
    )


def test_cancel_a_job_from_its_page_then_filter_the_table_by_status(
    sqlite_service: RunningService, page: Page, screenshot: Screenshot
) -> None:
    job_id = sqlite_service.submit(
        {**NEVER_STARTS_SPEC, "name": unique("never-starts"), "target_accuracy": 0.9}
    )
    page.goto(f"{sqlite_service.url}/#/jobs/{job_id}")
    expect(page.locator("#job-status [data-status]")).to_have_text("queued")
    # Cancel asks first: dismissed, nothing happens; accepted, the job is cancelled.
    asked: list[str] = []

    def answer(dialog: Dialog, accept: bool) -> None:
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda dialog: answer(dialog, accept=False))
    page.click("#cancel-job")
    assert asked and asked[0].startswith("Cancel job ") and "It will not start." in asked[0]
    assert sqlite_service.job(job_id)["status"] == "queued"
    page.once("dialog", lambda dialog: answer(dialog, accept=True))
    page.click("#cancel-job")
    expect(page.locator("#job-status [data-status]")).to_have_text("cancelled")
    # Cancelled before it started: nothing to say of steps to target, not "never" nor "not reached".
    target_row = page.locator("#job-summary dt", has_text="Steps to").locator(
        "xpath=following-sibling::dd[1]"
    )
    expect(target_row).to_have_text("—")
    expect(page.locator("#cancel-job")).to_be_hidden()
    assert sqlite_service.job(job_id)["status"] == "cancelled"

    page.goto(f"{sqlite_service.url}/#/jobs")
    expect(page.locator(f'#jobs-table tr[data-job-id="{job_id}"]')).to_be_visible()
    expect(page.locator("#sweep-filter")).to_be_visible()
    screenshot(page, "jobs")
    page.select_option("#status-filter", "cancelled")
    page.wait_for_url(re.compile(r"status=cancelled"))
    expect(page.locator(f'#jobs-table tr[data-job-id="{job_id}"]')).to_be_visible()
    statuses = page.locator("#jobs-table tbody tr[data-job-id]").evaluate_all(
        "rows => rows.map(row => row.dataset.status)"
    )
    assert statuses and set(statuses) == {"cancelled"}


API_KEY = "dashboard-test-key"


@pytest.fixture
def keyed_service(sqlite_worker: RunningWorker, tmp_path: Path) -> Iterator[RunningService]:
    """A second API on the embedded worker's database, with an API key configured."""
    service, process = start_api(sqlite_worker, tmp_path / "api.log", BNLAB_API_KEYS=API_KEY)
    try:
        yield service
    finally:
        stop_api(process)


def test_the_page_asks_for_an_api_key_and_keeps_it_for_the_tab_only(
    keyed_service: RunningService, page: Page, screenshot: Screenshot
) -> None:
    require(
        httpx.get(f"{keyed_service.url}/v1/jobs", timeout=10).status_code == 401,
        "API-key authentication on /v1 when BNLAB_API_KEYS is set",
    )
    authorized = {"Authorization": f"Bearer {API_KEY}"}
    created = httpx.post(
        f"{keyed_service.url}/v1/jobs",
        json={**NEVER_STARTS_SPEC, "name": unique("keyed")},
        headers=authorized,
    )
    assert created.status_code == 201, created.text

    page.goto(keyed_service.url)
    dialog = page.locator("#api-key-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#api-key-message")).to_contain_text("needs an API key")
    screenshot(page, "api-key")

    page.fill("#api-key-input", "not-the-key")
    page.click("#api-key-form button[type=submit]")
    expect(page.locator("#api-key-message")).to_contain_text("refused")
    page.fill("#api-key-input", API_KEY)
    page.click("#api-key-form button[type=submit]")
    expect(dialog).to_be_hidden()
    expect(page.locator(f'#jobs-table tr[data-job-id="{created.json()["id"]}"]')).to_be_visible()

    assert page.evaluate("sessionStorage.getItem('bnlab.apiKey')") == API_KEY
    assert page.evaluate("localStorage.length") == 0, "the key is never kept beyond the tab"
    another_tab = page.context.new_page()
    another_tab.goto(keyed_service.url)
    expect(another_tab.locator("#api-key-dialog")).to_be_visible()
