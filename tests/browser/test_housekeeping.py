"""Housekeeping in the dashboard (headless Chromium, the embedded service): tag a job from its page, filter
the table by the tag, archive it out of the table, then delete it after the confirmation; upload a dataset,
see it listed and delete it."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Dialog, Page, expect

from tests.fixtures.service import NEVER_STARTS_SPEC, RunningService

pytestmark = pytest.mark.browser


def test_tag_filter_archive_and_delete_a_job_from_the_dashboard(
    sqlite_service: RunningService, page: Page
) -> None:
    service = sqlite_service
    tag = f"study-{uuid.uuid4().hex[:6]}"
    job_id = service.submit(NEVER_STARTS_SPEC)
    row = f'#jobs-table tr[data-job-id="{job_id}"]'

    page.goto(f"{service.url}/#/jobs/{job_id}")
    page.fill("#job-tags", f"{tag} bn")
    page.click("#save-job-tags")
    expect(page.locator(".tags .tag", has_text=tag).first).to_be_visible()
    assert service.job(job_id)["tags"] == [tag, "bn"]

    page.goto(f"{service.url}/#/jobs?tag={tag}")
    expect(page.locator(row)).to_be_visible()
    expect(page.locator("#jobs-table tbody tr[data-job-id]")).to_have_count(1)

    page.goto(f"{service.url}/#/jobs/{job_id}")
    page.click("#archive-job")
    expect(page.locator("#archive-job")).to_have_text("Unarchive")
    page.goto(f"{service.url}/#/jobs?tag={tag}")
    expect(page.locator("#jobs-table tbody")).to_contain_text("No jobs")
    page.check("#archived-filter")
    expect(page.locator(row)).to_be_visible()

    page.goto(f"{service.url}/#/jobs/{job_id}")
    dialogs: list[str] = []

    def answer(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss() if len(dialogs) == 1 else dialog.accept()

    page.on("dialog", answer)
    page.click("#delete-job")  # declined: nothing happens
    assert service.job(job_id)["status"] == "queued"
    page.click("#delete-job")
    page.wait_for_url(f"{service.url}/#/jobs")
    assert len(dialogs) == 2 and "cannot be undone" in dialogs[0]
    assert httpx.get(f"{service.url}/v1/jobs/{job_id}").status_code == 404


def test_upload_a_dataset_see_it_listed_and_delete_it(
    sqlite_service: RunningService, page: Page, tmp_path: Path
) -> None:
    name = f"pairs-{uuid.uuid4().hex[:6]}"
    data = tmp_path / "pairs.csv"
    data.write_text("a,b,label\n" + "".join(f"{i % 7},{i % 5},{i % 2}\n" for i in range(40)))
    broken = tmp_path / "broken.csv"
    broken.write_text("a,b\n1,2\n")
    page.goto(f"{sqlite_service.url}/#/datasets")

    page.fill("#dataset-name", name)
    page.set_input_files("#dataset-file", str(broken))
    page.click("#upload-dataset")
    expect(page.locator(".messages")).to_contain_text("label column")

    page.set_input_files("#dataset-file", str(data))
    page.click("#upload-dataset")
    row = page.locator(f'#datasets-table tr[data-dataset="{name}"]')
    expect(row).to_contain_text(f"user:{name}")
    expect(row).to_contain_text("40")

    page.on("dialog", lambda dialog: dialog.accept())
    row.locator("button[data-delete]").click()
    expect(row).to_have_count(0)
    listed = httpx.get(f"{sqlite_service.url}/v1/datasets").json()["items"]
    assert name not in [dataset["name"] for dataset in listed]
