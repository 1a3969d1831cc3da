"""API keys: with keys configured every /v1 route needs a bearer key (401 without one or with a wrong one,
403 for a read-only key on a route that writes), the probes, docs and dashboard page stay open, and no key
ever shows up in an answer or a log line — in-process and through a real uvicorn process."""

from __future__ import annotations

import logging
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.auth import MISSING_OR_WRONG_KEY, READ_ONLY_KEY, ApiKeys
from api.main import create_app
from core.db.migrate import upgrade_database
from core.settings import Settings
from tests.fixtures.worker import PROJECT_ROOT, free_port
from tests.reliability.conftest import TINY_SPEC

FULL_KEY = secrets.token_urlsafe(24)
OTHER_FULL_KEY = secrets.token_urlsafe(24)
READ_ONLY_KEY_VALUE = secrets.token_urlsafe(24)
WRONG_KEY = secrets.token_urlsafe(24)
PLACEHOLDER_ID = "0123456789abcdef0123456789abcdef"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keyed_settings(sqlite_url: str, tmp_path: Path) -> Settings:
    upgrade_database(sqlite_url)
    return Settings(
        _env_file=None,
        database_url=sqlite_url,
        broker_url=f"sqla+sqlite:///{tmp_path / 'broker.db'}",
        republish_seconds=3600.0,
        api_keys=f" {FULL_KEY} ,, {OTHER_FULL_KEY}",  # spaces and empty entries are ignored
        read_only_api_keys=READ_ONLY_KEY_VALUE,
    )


@pytest.fixture
def keyed_client(keyed_settings: Settings) -> Iterator[TestClient]:
    app = create_app(keyed_settings)
    with TestClient(app) as client:
        yield client
    app.state.store.dispose()


def v1_operations(client: TestClient) -> list[tuple[str, str]]:
    """(method, path) of every /v1 operation the app publishes, its path parameters filled in."""
    paths: dict[str, dict[str, Any]] = client.get("/openapi.json").json()["paths"]
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", PLACEHOLDER_ID, path))
        for path, operations in paths.items()
        if path.startswith("/v1")
        for method in operations
    ]


def test_every_v1_route_refuses_a_request_without_a_known_key(keyed_client: TestClient) -> None:
    operations = v1_operations(keyed_client)
    assert ("POST", "/v1/jobs") in operations and ("GET", "/v1/compare") in operations
    for method, path in operations:
        for headers in ({}, bearer(WRONG_KEY), {"Authorization": f"Basic {FULL_KEY}"}, bearer("")):
            answer = keyed_client.request(method, path, headers=headers, json=TINY_SPEC)
            assert answer.status_code == 401, (method, path, headers, answer.text)
            assert answer.json() == {"detail": MISSING_OR_WRONG_KEY}
            assert answer.headers["www-authenticate"] == "Bearer"
    # Refused before anything ran: the POSTs above stored no job.
    assert keyed_client.get("/v1/jobs", headers=bearer(FULL_KEY)).json()["items"] == []


def test_a_full_access_key_reads_and_writes(keyed_client: TestClient) -> None:
    for key in (FULL_KEY, OTHER_FULL_KEY):
        submitted = keyed_client.post("/v1/jobs", json=TINY_SPEC, headers=bearer(key))
        assert submitted.status_code == 201
        job_id = submitted.json()["id"]
        assert keyed_client.get(f"/v1/jobs/{job_id}", headers=bearer(key)).status_code == 200
        assert keyed_client.post(f"/v1/jobs/{job_id}/cancel", headers=bearer(key)).status_code == 202


def test_a_read_only_key_reads_but_may_not_write(keyed_client: TestClient) -> None:
    job_id = keyed_client.post("/v1/jobs", json=TINY_SPEC, headers=bearer(FULL_KEY)).json()["id"]
    reader = bearer(READ_ONLY_KEY_VALUE)

    assert keyed_client.get("/v1/jobs", headers=reader).status_code == 200
    assert keyed_client.get(f"/v1/jobs/{job_id}", headers=reader).status_code == 200
    assert keyed_client.get(f"/v1/jobs/{job_id}/metrics", headers=reader).status_code == 200
    assert keyed_client.get("/v1/compare", params={"ids": job_id}, headers=reader).status_code == 200
    for method, path in v1_operations(keyed_client):
        if method not in {"GET", "HEAD"}:
            answer = keyed_client.request(method, path.replace(PLACEHOLDER_ID, job_id), headers=reader)
            assert answer.status_code == 403, (method, path, answer.text)
            assert answer.json() == {"detail": READ_ONLY_KEY}
    # Nothing was written: one job, still queued, no cancel request.
    jobs = keyed_client.get("/v1/jobs", headers=reader).json()["items"]
    assert [(job["id"], job["status"]) for job in jobs] == [(job_id, "queued")]


def test_probes_docs_and_the_dashboard_page_stay_open(keyed_client: TestClient) -> None:
    assert keyed_client.get("/healthz").status_code == 200
    assert keyed_client.get("/readyz").status_code == 200
    assert keyed_client.get("/openapi.json").status_code == 200
    assert keyed_client.get("/docs").status_code == 200
    assert keyed_client.get("/").status_code != 401  # the dashboard's static page


def test_without_keys_the_api_is_open(sqlite_url: str, tmp_path: Path) -> None:
    upgrade_database(sqlite_url)
    settings = Settings(
        _env_file=None,
        database_url=sqlite_url,
        broker_url=f"sqla+sqlite:///{tmp_path / 'broker.db'}",
        republish_seconds=3600.0,
        api_keys="",
        read_only_api_keys="",
    )
    app = create_app(settings)
    with TestClient(app) as client:
        assert client.post("/v1/jobs", json=TINY_SPEC).status_code == 201
        assert client.get("/v1/jobs", headers=bearer(WRONG_KEY)).status_code == 200
    app.state.store.dispose()


def test_the_openapi_document_offers_bearer_auth_and_documents_401_and_403_on_every_v1_route(
    keyed_client: TestClient,
) -> None:
    document: dict[str, Any] = keyed_client.get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert [scheme["scheme"].lower() for scheme in schemes.values()] == ["bearer"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/v1") or path == "/metrics":  # what Prometheus scrapes is guarded too
                assert {"401", "403"} <= set(operation["responses"]), (method, path)
                assert operation.get("security"), (method, path)
            else:
                assert not operation.get("security"), (method, path)


def test_keys_are_told_apart_by_what_they_may_do() -> None:
    keys = ApiKeys.from_settings(
        Settings(
            _env_file=None, api_keys=f"{FULL_KEY},both", read_only_api_keys=f"{READ_ONLY_KEY_VALUE},both"
        )
    )
    assert keys.required
    assert keys.access_of(FULL_KEY) == "full"
    assert keys.access_of(READ_ONLY_KEY_VALUE) == "read_only"
    assert keys.access_of("both") == "full"
    assert keys.access_of(WRONG_KEY) is None
    assert keys.access_of(FULL_KEY[:-1]) is None and keys.access_of(FULL_KEY + "x") is None
    assert not ApiKeys.from_settings(Settings(_env_file=None, api_keys=" , ", read_only_api_keys="")).required


def test_a_key_is_never_echoed_in_an_answer_or_logged(
    keyed_client: TestClient, keyed_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answers = [
        keyed_client.post("/v1/jobs", json=TINY_SPEC, headers=bearer(WRONG_KEY)),
        keyed_client.post("/v1/jobs", content=b"{not json", headers=bearer(FULL_KEY)),
        keyed_client.post("/v1/jobs", json={**TINY_SPEC, "steps": -1}, headers=bearer(FULL_KEY)),
        keyed_client.post("/v1/jobs", json=TINY_SPEC, headers=bearer(READ_ONLY_KEY_VALUE)),
        keyed_client.get("/v1/jobs", headers=bearer(FULL_KEY)),
        keyed_client.get(f"/v1/jobs/{PLACEHOLDER_ID}", headers=bearer(FULL_KEY)),
    ]
    assert [answer.status_code for answer in answers] == [401, 422, 422, 403, 200, 404]
    for key in (WRONG_KEY, FULL_KEY, READ_ONLY_KEY_VALUE):
        for answer in answers:
            assert key not in answer.text and key not in str(answer.headers)
        assert key not in caplog.text
    assert FULL_KEY not in repr(keyed_settings) and READ_ONLY_KEY_VALUE not in repr(keyed_settings)


def test_a_served_api_logs_no_key(sqlite_url: str, tmp_path: Path) -> None:
    """uvicorn's own access and error logs, at the level it is deployed with."""
    upgrade_database(sqlite_url)
    port = free_port()
    log_path = tmp_path / "api.log"
    environment = {
        **os.environ,
        "DATABASE_URL": sqlite_url,
        "BROKER_URL": f"sqla+sqlite:///{tmp_path / 'broker.db'}",
        "BNLAB_API_KEYS": FULL_KEY,
        "BNLAB_READ_ONLY_API_KEYS": READ_ONLY_KEY_VALUE,
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    command = [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            command, cwd=tmp_path, env=environment, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
        statuses = [
            httpx.get(f"{url}/v1/jobs", headers=bearer(WRONG_KEY), timeout=10).status_code,
            httpx.post(
                f"{url}/v1/jobs", json=TINY_SPEC, headers=bearer(READ_ONLY_KEY_VALUE), timeout=10
            ).status_code,
            httpx.post(f"{url}/v1/jobs", content=b"{", headers=bearer(FULL_KEY), timeout=10).status_code,
            httpx.get(f"{url}/v1/jobs", headers=bearer(FULL_KEY), timeout=10).status_code,
        ]
    finally:
        server.terminate()
        server.wait(timeout=10)
    log_text = log_path.read_text()
    assert statuses == [401, 403, 422, 200]
    assert '"GET /v1/jobs HTTP/1.1" 401' in log_text  # the access log is on and saw the requests
    for key in (WRONG_KEY, FULL_KEY, READ_ONLY_KEY_VALUE):
        assert key not in log_text
