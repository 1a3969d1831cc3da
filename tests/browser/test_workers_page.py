"""The dashboard's Workers page and a job nobody can take, in headless Chromium against the real running
service (the embedded mode's CPU worker): the worker is listed with its queues and device, and a `cuda`
job's page says why it waits."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Screenshot
from tests.fixtures.service import NEVER_STARTS_SPEC, RunningService

pytestmark = pytest.mark.browser


def test_the_workers_page_lists_the_worker_and_a_cuda_job_says_why_it_waits(
    sqlite_service: RunningService, page: Page, screenshot: Screenshot
) -> None:
    page.goto(f"{sqlite_service.url}/#/workers")
    expect(page.locator("nav [data-nav=workers]")).to_have_class("active")
    row = page.locator('#workers-table tr[data-alive="true"]').first
    expect(row).to_contain_text("cpu, default")
    [worker] = [
        worker
        for worker in httpx.get(f"{sqlite_service.url}/v1/workers", timeout=10).json()["items"]
        if worker["queues"] == ["cpu", "default"]
    ]
    expect(
        page.locator(f'#workers-table tr[data-worker-id="{worker["id"]}"] .worker-device')
    ).to_contain_text(f"CPU: {worker['device']['name']}")
    screenshot(page, "workers")

    job_id = sqlite_service.submit(NEVER_STARTS_SPEC)
    try:
        page.goto(f"{sqlite_service.url}/#/jobs/{job_id}")
        expect(page.locator("#job-waiting")).to_be_visible()
        expect(page.locator("#job-waiting")).to_have_text(
            f"Waiting: {sqlite_service.job(job_id)['waiting_for']}."
        )
        assert "no live worker consumes the gpu queue" in page.locator("#job-waiting").inner_text()
    finally:
        httpx.post(f"{sqlite_service.url}/v1/jobs/{job_id}/cancel", timeout=10).raise_for_status()
    expect(page.locator("#job-waiting")).to_be_hidden()
