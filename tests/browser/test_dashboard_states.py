"""The dashboard in Chromium for jobs in states a user meets beside a clean success: a sweep list with a
long grid at 1,400 px, a job while it trains, a job that diverged."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.fixtures.service import NEVER_STARTS_SPEC, TINY_SPEC, RunningService

pytestmark = pytest.mark.browser

# A relu net without BN at a learning rate of 100 overflows within a hundred steps (at step 71 for seed 0).
DIVERGING_SPEC: dict[str, Any] = {
    **TINY_SPEC,
    "architecture": {"kind": "mlp", "hidden": [64, 64], "activation": "relu"},
    "batch_norm": False,
    "learning_rate": 100.0,
    "steps": 100,
    "target_accuracy": 0.99,
}
# Long enough to be seen training (tens of seconds at the tiny net's pace); cancelled by the test.
LONG_SPEC: dict[str, Any] = {**TINY_SPEC, "steps": 100_000, "eval_every": 10, "target_accuracy": 0.99}


def summary_cell(page: Page, term: str | re.Pattern[str]) -> Locator:
    """The value beside a term of the job's summary (the term whole, or matching a pattern)."""
    pattern = term if isinstance(term, re.Pattern) else re.compile(f"^{re.escape(term)}$")
    return page.locator("#job-summary dt", has_text=pattern).locator("xpath=following-sibling::dd[1]")


def summary_value(page: Page, term: str | re.Pattern[str]) -> str:
    return summary_cell(page, term).inner_text()


STEPS_TO_TARGET = re.compile(r"^Steps to ")


def summary_terms(page: Page) -> list[str]:
    return page.locator("#job-summary dt").all_inner_texts()


def test_the_sweeps_list_does_not_scroll_sideways_at_1400_pixels(
    sqlite_service: RunningService, page: Page
) -> None:
    request = {
        "name": f"wide-grid-{uuid.uuid4().hex[:6]}",
        "base": NEVER_STARTS_SPEC,  # on the gpu queue: stays queued, so the test worker stays free
        "grid": {
            "learning_rate": [0.000123456, 0.00123456, 0.0123456, 0.123456],
            "architecture.hidden": [[100, 100, 100, 100, 100, 100], [200, 200, 200, 200, 200, 200]],
        },
        "seeds": [0],
    }
    created = httpx.post(f"{sqlite_service.url}/v1/sweeps", json=request, timeout=10)
    assert created.status_code == 201, created.text
    try:
        page.set_viewport_size({"width": 1400, "height": 900})
        page.goto(f"{sqlite_service.url}/#/sweeps")
        expect(page.locator(f'#sweeps-table tr[data-sweep-id="{created.json()["id"]}"]')).to_be_visible()
        widths = page.evaluate(
            "() => ({scroll: document.documentElement.scrollWidth,"
            " client: document.documentElement.clientWidth})"
        )
        assert widths["scroll"] <= widths["client"], widths
    finally:
        httpx.post(f"{sqlite_service.url}/v1/sweeps/{created.json()['id']}/cancel", timeout=10)


def test_a_running_job_shows_what_is_known_and_the_list_its_latest_accuracy(
    sqlite_service: RunningService, page: Page
) -> None:
    job_id = sqlite_service.submit({**LONG_SPEC, "name": f"long-{uuid.uuid4().hex[:6]}"})
    try:
        page.goto(f"{sqlite_service.url}/#/jobs/{job_id}")
        expect(page.locator("#job-status [data-status]")).to_have_text("running")
        expect(summary_cell(page, "Latest val. accuracy")).to_have_text(
            re.compile(r"^0\.\d{3} \(step \d+\)$")
        )
        assert summary_value(page, "Device") == "cpu (as requested)"
        assert summary_value(page, "Step").split(" of ")[1] == f"{LONG_SPEC['steps']}"
        assert summary_value(page, STEPS_TO_TARGET) in {
            "not yet",
            *[str(step) for step in range(0, 100_000, 10)],
        }
        assert "Final val. accuracy" not in summary_terms(page)

        page.goto(f"{sqlite_service.url}/#/jobs")
        accuracy = page.locator(f'#jobs-table tr[data-job-id="{job_id}"] td.live')
        expect(accuracy).to_have_text(re.compile(r"^0\.\d{3}$"))
        assert (accuracy.get_attribute("title") or "").startswith("latest evaluation, at step ")
    finally:
        httpx.post(f"{sqlite_service.url}/v1/jobs/{job_id}/cancel", timeout=10)
        sqlite_service.wait_until_finished(job_id)


def test_a_diverged_job_shows_its_accuracy_before_divergence(
    sqlite_service: RunningService, page: Page
) -> None:
    job_id = sqlite_service.submit({**DIVERGING_SPEC, "name": f"diverges-{uuid.uuid4().hex[:6]}"})
    job = sqlite_service.wait_until_finished(job_id)
    assert job["status"] == "diverged"
    page.goto(f"{sqlite_service.url}/#/jobs/{job_id}")
    expect(page.locator("#job-status [data-status]")).to_have_text("diverged")
    expect(page.locator("#job-summary")).to_contain_text("Val. accuracy before divergence")
    terms = summary_terms(page)
    assert "Final val. accuracy" not in terms and "Best val. accuracy" not in terms
    assert summary_value(page, "Diverged at step") == str(job["summary"]["diverged_at_step"])
    before = summary_value(page, "Val. accuracy before divergence")
    assert before == "—" or before.endswith(")"), before  # a value with its step, or none evaluated
    assert summary_value(page, STEPS_TO_TARGET) in {"not reached", str(job["summary"]["steps_to_target"])}
