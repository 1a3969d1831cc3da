"""`GET /metrics` scraped from a running service (uvicorn, worker, embedded mode) and read with Prometheus'
own parser: jobs by status and queue, queue depth, training rate, live workers, open event streams, request
latency; and behind the API keys when keys are configured."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.main import create_app
from core.db.migrate import upgrade_database
from core.settings import Settings
from tests.fixtures.service import NEVER_STARTS_SPEC, TINY_SPEC, RunningService

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str, **headers: str) -> Samples:
    answer = httpx.get(f"{url}/metrics", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_scrape_counts_jobs_queues_streams_and_request_latency(sqlite_service: RunningService) -> None:
    url = sqlite_service.url
    finished = sqlite_service.submit(TINY_SPEC)
    sqlite_service.wait_until_finished(finished)
    before = scrape(url)

    waiting = sqlite_service.submit(NEVER_STARTS_SPEC)  # routed to the gpu queue, which no worker consumes
    stream_opened = threading.Event()

    def follow() -> None:
        with httpx.stream("GET", f"{url}/v1/jobs/{waiting}/events", timeout=30) as stream:
            stream_opened.set()
            for _ in stream.iter_lines():
                pass  # until the job is cancelled

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    assert stream_opened.wait(10)
    try:
        after = scrape(url)
    finally:
        httpx.post(f"{url}/v1/jobs/{waiting}/cancel", timeout=10).raise_for_status()
        follower.join(10)

    assert value(after, "bnlab_jobs", status="queued", queue="gpu") == (
        value(before, "bnlab_jobs", status="queued", queue="gpu") + 1
    )
    assert (
        value(after, "bnlab_queue_depth", queue="gpu") == value(before, "bnlab_queue_depth", queue="gpu") + 1
    )
    assert value(after, "bnlab_jobs", status="succeeded", queue="cpu") >= 1  # TINY_SPEC trains on the cpu
    assert {"default", "cpu", "gpu"} <= {
        dict(labels)["queue"] for name, labels in after if name == "bnlab_queue_depth"
    }
    assert value(after, "bnlab_event_streams_open") >= 1
    assert value(after, "bnlab_workers_live", device="cpu") >= 1  # the embedded worker, on this CPU machine
    assert ("bnlab_training_model_steps_per_second", ()) in after
    # The job reads counted by route template (ids do not make series of their own), with their status.
    reads = value(
        after,
        "bnlab_http_request_duration_seconds_count",
        method="GET",
        route="/v1/jobs/{job_id}",
        status="200",
    )
    assert reads >= 1
    assert not any(waiting in dict(labels).get("route", "") for _, labels in after)
    assert (
        value(
            after, "bnlab_http_request_duration_seconds_count", method="POST", route="/v1/jobs", status="201"
        )
        >= 2
    )


@pytest.fixture
def keyed_client(sqlite_url: str, tmp_path: Path) -> Iterator[TestClient]:
    upgrade_database(sqlite_url)
    settings = Settings(
        _env_file=None,
        database_url=sqlite_url,
        broker_url=f"sqla+sqlite:///{tmp_path / 'broker.db'}",
        republish_seconds=3600.0,
        api_keys="full-key",
        read_only_api_keys="reading-key",
    )
    app = create_app(settings)
    with TestClient(app) as client:
        yield client
    app.state.store.dispose()


def test_metrics_need_a_key_when_keys_are_configured(keyed_client: TestClient) -> None:
    refused = keyed_client.get("/metrics")
    assert refused.status_code == 401 and "API key" in refused.json()["detail"]
    assert keyed_client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    answer = keyed_client.get("/metrics", headers={"Authorization": "Bearer reading-key"})
    assert answer.status_code == 200
    names = {family.name for family in text_string_to_metric_families(answer.text)}
    assert {"bnlab_jobs", "bnlab_queue_depth", "bnlab_http_request_duration_seconds"} <= names
