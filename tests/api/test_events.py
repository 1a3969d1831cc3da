"""`GET /v1/jobs/{id}/events` against the real running service (API + worker): what a client reading the
stream sees, including reconnecting with Last-Event-ID and fifty streams at once."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import aconnect_sse, connect_sse

from tests.fixtures.service import NEVER_STARTS_SPEC, SLOW_SPEC, RunningService

STREAM_TIMEOUT = httpx.Timeout(10.0, read=30.0)


@dataclass(frozen=True)
class Event:
    kind: str
    id: str
    data: dict[str, Any]


def read_events(
    service: RunningService,
    job_id: str,
    last_event_id: str | None = None,
    stop_after_metrics: int | None = None,
) -> Iterator[Event]:
    """The stream's events until it ends (or until `stop_after_metrics` metrics events, then disconnect)."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    metrics_seen = 0
    with (
        httpx.Client(base_url=service.url, timeout=STREAM_TIMEOUT) as client,
        connect_sse(client, "GET", f"/v1/jobs/{job_id}/events", headers=headers) as source,
    ):
        assert source.response.status_code == 200
        for message in source.iter_sse():
            if not message.data:  # a keep-alive comment
                continue
            yield Event(message.event, message.id, message.json())
            metrics_seen += message.event == "metrics"
            if stop_after_metrics is not None and metrics_seen >= stop_after_metrics:
                return


def stored_metrics(service: RunningService, job_id: str) -> dict[int, dict[str, float | None]]:
    """The job's stored metric points by step, read from the metrics route at full resolution."""
    response = httpx.get(f"{service.url}/v1/jobs/{job_id}/metrics", params={"max_points": 10_000})
    response.raise_for_status()
    by_step: dict[int, dict[str, float | None]] = {}
    for name, series in response.json()["series"].items():
        for step, value in zip(series["steps"], series["values"], strict=True):
            by_step.setdefault(step, {})[name] = value
    return by_step


def statuses(events: list[Event]) -> list[tuple[str, str]]:
    return [(event.id, event.data["status"]) for event in events if event.kind == "status"]


def test_a_stream_shows_progress_metrics_and_the_final_status_then_ends(
    running_service: RunningService,
) -> None:
    job_id = running_service.submit(SLOW_SPEC)
    events = list(read_events(running_service, job_id))

    assert statuses(events) == [("status:1", "queued"), ("status:2", "running"), ("status:3", "succeeded")]
    assert events[-1].kind == "status", "the stream ends right after the final status"
    kinds = [event.kind for event in events]
    first_metrics, last_metrics = kinds.index("metrics"), len(kinds) - 1 - kinds[::-1].index("metrics")
    assert kinds.index("status") < first_metrics and last_metrics < len(kinds) - 1

    progress_steps = [event.data["step"] for event in events if event.kind == "progress"]
    assert progress_steps == sorted(progress_steps) and len(set(progress_steps)) >= 2
    assert progress_steps[-1] == SLOW_SPEC["steps"]
    assert all(event.data["steps"] == SLOW_SPEC["steps"] for event in events if event.kind == "progress")

    metrics = [event for event in events if event.kind == "metrics"]
    stored = stored_metrics(running_service, job_id)
    assert [event.data["step"] for event in metrics] == sorted(stored)
    assert all(event.id == f"metrics:{event.data['step']}" for event in metrics)
    assert {event.data["step"]: event.data["values"] for event in metrics} == stored

    final = events[-1].data
    job = running_service.job(job_id)
    assert final["summary"]["final_val_accuracy"] == job["summary"]["final_val_accuracy"]
    assert final["step"] == SLOW_SPEC["steps"]


def test_reconnecting_with_last_event_id_resumes_without_gaps_or_repeats(
    running_service: RunningService,
) -> None:
    job_id = running_service.submit(SLOW_SPEC)
    before = list(read_events(running_service, job_id, stop_after_metrics=1))
    assert running_service.job(job_id)["status"] == "running", "the first connection ended mid-run"
    after = list(read_events(running_service, job_id, last_event_id=before[-1].id))

    assert statuses(before) == [("status:1", "queued"), ("status:2", "running")]
    assert statuses(after) == [("status:3", "succeeded")]

    steps = [event.data["step"] for event in before + after if event.kind == "metrics"]
    assert steps == sorted(stored_metrics(running_service, job_id))

    # Resuming after a status: everything after it, nothing before it.
    after_running = list(read_events(running_service, job_id, last_event_id="status:2"))
    assert [event.data["step"] for event in after_running if event.kind == "metrics"] == steps
    assert statuses(after_running) == [("status:3", "succeeded")]
    # After the final status there is nothing left: the stream ends at once.
    assert [event.kind for event in read_events(running_service, job_id, last_event_id="status:3")] == []


def test_a_queued_job_gets_keep_alive_comments_and_a_cancel_ends_its_stream(
    running_service: RunningService,
) -> None:
    job_id = running_service.submit(NEVER_STARTS_SPEC)
    lines: list[str] = []
    with (
        httpx.Client(base_url=running_service.url, timeout=STREAM_TIMEOUT) as client,
        client.stream("GET", f"/v1/jobs/{job_id}/events") as response,
    ):
        cancelled = False
        for line in response.iter_lines():
            lines.append(line)
            if line.startswith(":") and not cancelled:  # the service is configured for 1 s keep-alives
                httpx.post(f"{running_service.url}/v1/jobs/{job_id}/cancel").raise_for_status()
                cancelled = True
    blocks = [block.splitlines() for block in "\n".join(lines).split("\n\n") if block.strip()]
    first, last = blocks[0], blocks[-1]
    assert (first[0], first[2]) == ("event: status", "id: status:1")
    assert json.loads(first[1].removeprefix("data: "))["status"] == "queued"
    assert [": keep-alive"] in blocks[1:-1], "a comment kept the quiet stream alive"
    assert (last[0], last[2]) == ("event: status", "id: status:2")
    assert json.loads(last[1].removeprefix("data: "))["status"] == "cancelled"


def test_an_unknown_job_is_a_404_before_any_stream(running_service: RunningService) -> None:
    response = httpx.get(f"{running_service.url}/v1/jobs/{uuid.uuid4().hex}/events")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    assert "not found" in response.json()["detail"]


def test_a_malformed_last_event_id_is_a_422(running_service: RunningService) -> None:
    job_id = running_service.submit(NEVER_STARTS_SPEC)
    response = httpx.get(
        f"{running_service.url}/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "step 3"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "last-event-id"]
    httpx.post(f"{running_service.url}/v1/jobs/{job_id}/cancel").raise_for_status()


async def first_event_then_end(client: httpx.AsyncClient, job_id: str, opened: asyncio.Event) -> list[str]:
    """One stream: its status events until it ends."""
    seen: list[str] = []
    async with aconnect_sse(client, "GET", f"/v1/jobs/{job_id}/events") as source:
        async for message in source.aiter_sse():
            if message.event == "status":
                seen.append(message.json()["status"])
                opened.set()
    return seen


async def fifty_streams(service: RunningService) -> tuple[list[list[str]], list[float], float]:
    job_ids = [service.submit(NEVER_STARTS_SPEC) for _ in range(5)]
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(base_url=service.url, timeout=STREAM_TIMEOUT, limits=limits) as streams:
        openings = [asyncio.Event() for _ in range(50)]
        started = time.monotonic()
        readers = [
            asyncio.create_task(first_event_then_end(streams, job_ids[index % 5], openings[index]))
            for index in range(50)
        ]
        await asyncio.wait_for(asyncio.gather(*(opened.wait() for opened in openings)), 20)
        all_open_after = time.monotonic() - started
        async with httpx.AsyncClient(base_url=service.url, timeout=10) as probe:
            latencies = []
            for _ in range(30):
                start = time.perf_counter()
                (await probe.get("/healthz")).raise_for_status()
                latencies.append(time.perf_counter() - start)
            for job_id in job_ids:
                (await probe.post(f"/v1/jobs/{job_id}/cancel")).raise_for_status()
        seen = await asyncio.wait_for(asyncio.gather(*readers), 20)
    return seen, latencies, all_open_after


def test_fifty_streams_are_served_by_one_poller_while_healthz_stays_fast(
    running_service: RunningService,
) -> None:
    seen, latencies, all_open_after = asyncio.run(fifty_streams(running_service))
    # Every stream got its job's history and its end; none waited for a database connection (the pool
    # has far fewer than fifty).
    assert seen == [["queued", "cancelled"]] * 50
    assert all_open_after < 10
    assert statistics.median(latencies) < 0.05, latencies
    assert max(latencies) < 0.5, latencies
