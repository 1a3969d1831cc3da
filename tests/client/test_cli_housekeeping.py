"""`bnlab tag`, `bnlab archive`, `bnlab jobs --tag`, `bnlab delete` and `bnlab dataset upload|list|delete`
against the real running service."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from client.cli import app
from tests.client.test_cli_service import bnlab
from tests.fixtures.service import NEVER_STARTS_SPEC, RunningService

pytestmark = pytest.mark.service


@pytest.fixture
def service(sqlite_service: RunningService) -> RunningService:
    return sqlite_service


def test_tag_archive_and_filter_jobs(service: RunningService) -> None:
    study = f"study-{uuid.uuid4().hex[:8]}"  # the service is shared: a tag of this test's own
    tagged, other = service.submit(NEVER_STARTS_SPEC), service.submit(NEVER_STARTS_SPEC)

    added = bnlab(service, "tag", tagged, study, "bn", "--note", "the baseline")
    assert added.exit_code == 0, added.output
    assert added.stdout.strip() == f"Tags of {tagged}: {study} bn."
    removed = bnlab(service, "tag", tagged, "--remove", "bn")
    assert removed.stdout.strip() == f"Tags of {tagged}: {study}."
    listed = bnlab(service, "jobs", "--tag", study)
    assert tagged in listed.stdout and other not in listed.stdout and study in listed.stdout
    assert "the baseline" in bnlab(service, "show", tagged).stdout

    archived = bnlab(service, "archive", tagged)
    assert archived.exit_code == 0 and archived.stdout.strip() == f"Archived {tagged}."
    assert "No jobs." in bnlab(service, "jobs", "--tag", study).stdout
    shown = bnlab(service, "jobs", "--tag", study, "--archived", "all")
    assert tagged in shown.stdout and "(archived)" in shown.stdout
    assert bnlab(service, "archive", "--undo", tagged).exit_code == 0
    assert tagged in bnlab(service, "jobs", "--tag", study).stdout

    bad = bnlab(service, "tag", tagged, "no spaces allowed")
    assert bad.exit_code == 1 and "tags" in bad.stderr


def test_delete_asks_first_and_then_deletes(service: RunningService) -> None:
    job_id = service.submit(NEVER_STARTS_SPEC)
    environment = {"COLUMNS": "200", "BNLAB_API_KEY": "", "BNLAB_URL": ""}

    declined = CliRunner().invoke(app, ["--url", service.url, "delete", job_id], input="n\n", env=environment)
    assert declined.exit_code == 1 and "Aborted" in declined.output
    assert service.job(job_id)["status"] == "queued"

    deleted = CliRunner().invoke(app, ["--url", service.url, "delete", job_id], input="y\n", env=environment)
    assert deleted.exit_code == 0, deleted.output
    assert f"Deleted job {job_id}." in deleted.stdout
    assert httpx.get(f"{service.url}/v1/jobs/{job_id}").status_code == 404
    missing = bnlab(service, "delete", "--yes", job_id)
    assert missing.exit_code == 1 and "not found" in missing.stderr


def test_dataset_upload_list_and_delete(service: RunningService, tmp_path: Path) -> None:
    name = f"pairs-{uuid.uuid4().hex[:8]}"
    data = tmp_path / "train.csv"
    data.write_text("a,b,label\n" + "".join(f"{i % 7},{i % 5},{i % 2}\n" for i in range(40)))

    uploaded = bnlab(service, "dataset", "upload", name, str(data))
    assert uploaded.exit_code == 0, uploaded.output
    assert f"Uploaded {name}: 40 training and 0 validation examples of shape 2, 2 classes" in uploaded.stdout
    assert f'"dataset": "user:{name}"' in uploaded.stdout
    assert name in bnlab(service, "dataset", "list").stdout

    broken = tmp_path / "broken.csv"
    broken.write_text("a,b\n1,2\n")
    refused = bnlab(service, "dataset", "upload", f"{name}-bad", str(broken))
    assert refused.exit_code == 1 and "label column" in refused.stderr

    deleted = bnlab(service, "dataset", "delete", name)
    assert deleted.exit_code == 0 and deleted.stdout.strip() == f"Deleted dataset {name}."
    assert name not in bnlab(service, "dataset", "list").stdout
