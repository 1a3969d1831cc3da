"""On PostgreSQL a job's change wakes its event streams at once: the store's writes notify, the API's hub
listens. Every hub and API here polls only every 30 s, so an event that arrives within a second was
brought by a notification (or by the listener's reconnection), not by the periodic poll."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from httpx_sse import connect_sse

from api.events.hub import Batch, EventHub, StreamPosition, Subscription
from core.results import MetricPoint
from core.spec import JobSpec
from core.store import Store
from tests.fixtures.proxy import CuttableProxy
from tests.fixtures.service import TINY_SPEC, RunningService, start_api, stop_api
from tests.fixtures.worker import RunningWorker

POLL_SECONDS = 30
WOKEN_WITHIN_SECONDS = 0.5
STEPS = int(TINY_SPEC["steps"])
OWNER = "test-owner"


@pytest.fixture
def postgres_store(migrated_postgres_url: str) -> Iterator[Store]:
    store = Store(migrated_postgres_url)
    try:
        yield store
    finally:
        store.dispose()


def running_job(store: Store) -> str:
    job = store.create_job(JobSpec.model_validate(TINY_SPEC))
    assert store.acquire_lease(job.id, OWNER, lease_seconds=60).acquired
    return job.id


async def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def next_batch(subscription: Subscription, timeout: float) -> Batch | None:
    try:
        return await asyncio.wait_for(subscription.batches.get(), timeout)
    except TimeoutError:
        return None


def event_kinds(*batches: Batch | None) -> list[str]:
    return [event.event or "" for batch in batches if batch is not None for event in batch.events]


def progress_steps(batch: Batch | None) -> list[int]:
    return [event.data["step"] for event in batch.events if event.event == "progress"] if batch else []


@asynccontextmanager
async def quiet_stream(hub: EventHub, job_id: str, connections: int = 1) -> AsyncIterator[Subscription]:
    """A stream on `job_id` once the hub's listener has connected `connections` times and the polls
    that a new stream and a new connection start are done (their events are dropped)."""
    subscription = hub.subscribe(job_id, StreamPosition())
    try:
        await wait_until(lambda: hub.is_listening, timeout=5)
        await asyncio.sleep(0.3)
        while not subscription.batches.empty():
            subscription.batches.get_nowait()
        yield subscription
    finally:
        hub.unsubscribe(subscription)
        await hub.close()


def test_a_progress_write_wakes_the_stream_at_once(postgres_store: Store) -> None:
    async def scenario() -> tuple[float, Batch | None, int]:
        job_id = running_job(postgres_store)
        hub = EventHub(postgres_store, POLL_SECONDS)
        async with quiet_stream(hub, job_id) as subscription:
            written = time.perf_counter()
            await asyncio.to_thread(postgres_store.set_progress, job_id, 0, STEPS, None, OWNER)
            batch = await next_batch(subscription, timeout=2)
            return time.perf_counter() - written, batch, hub.wakeups

    latency, batch, wakeups = asyncio.run(scenario())
    assert progress_steps(batch) == [0]
    assert latency < WOKEN_WITHIN_SECONDS
    assert wakeups == 1


def test_metrics_and_the_final_status_wake_it_and_other_jobs_changes_do_not(postgres_store: Store) -> None:
    async def scenario() -> tuple[Batch | None, list[str], int, int]:
        watched, other = running_job(postgres_store), running_job(postgres_store)
        hub = EventHub(postgres_store, POLL_SECONDS)
        async with quiet_stream(hub, watched) as subscription:
            polls_before = hub.polls
            await asyncio.to_thread(postgres_store.set_progress, other, 5, STEPS, None, OWNER)
            unrelated = await next_batch(subscription, timeout=WOKEN_WITHIN_SECONDS)

            points = [MetricPoint("val_accuracy", 10, 0.5)]
            await asyncio.to_thread(postgres_store.write_metrics, watched, points)
            metrics = await next_batch(subscription, timeout=WOKEN_WITHIN_SECONDS)
            await asyncio.to_thread(postgres_store.finish_job, watched, OWNER, "succeeded")
            final = await next_batch(subscription, timeout=WOKEN_WITHIN_SECONDS)
            return unrelated, event_kinds(metrics, final), hub.wakeups, hub.polls - polls_before

    unrelated, kinds, wakeups, polls = asyncio.run(scenario())
    assert unrelated is None, "another job's change reached this stream"
    assert kinds == ["metrics", "status"]
    assert (wakeups, polls) == (2, 2), "one poll per change of the watched job, none for the other job"


def through_proxy(database_url: str, proxy: CuttableProxy) -> str:
    return sa.engine.make_url(database_url).set(host="127.0.0.1", port=proxy.port).render_as_string(False)


def test_after_a_dropped_connection_the_listener_reconnects_and_nothing_is_missed(
    postgres_store: Store,
) -> None:
    database_port = sa.engine.make_url(postgres_store.url).port or 5432
    proxy = CuttableProxy(database_port)
    proxied_store = Store(through_proxy(postgres_store.url, proxy))

    async def scenario() -> tuple[list[int], float, list[int], int]:
        job_id = running_job(postgres_store)
        hub = EventHub(proxied_store, POLL_SECONDS)
        async with quiet_stream(hub, job_id) as subscription:
            proxy.cut()
            # Written while the listener is away: no notification reaches it.
            await asyncio.to_thread(postgres_store.set_progress, job_id, 10, STEPS, None, OWNER)
            cut_at = time.perf_counter()
            missed = await next_batch(subscription, timeout=5)
            recovered_after = time.perf_counter() - cut_at
            await wait_until(lambda: hub.is_listening, timeout=5)
            await asyncio.to_thread(postgres_store.set_progress, job_id, 20, STEPS, None, OWNER)
            heard = await next_batch(subscription, timeout=WOKEN_WITHIN_SECONDS)
            return progress_steps(missed), recovered_after, progress_steps(heard), hub.wakeups

    try:
        missed, recovered_after, heard, wakeups = asyncio.run(scenario())
    finally:
        proxied_store.dispose()
        proxy.close()
    assert missed == [10], "the poll made on reconnecting read the change made while away"
    assert recovered_after < 5
    assert heard == [20] and wakeups == 1


@pytest.fixture(scope="module")
def slowly_polling_service(
    postgres_redis_worker: RunningWorker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    """The deployed mode's API with a 30 s periodic poll: only notifications make its streams quick."""
    log_path = tmp_path_factory.mktemp("slow-poll-api") / "api.log"
    service, process = start_api(postgres_redis_worker, log_path, BNLAB_EVENTS_POLL_SECONDS=str(POLL_SECONDS))
    try:
        yield service
    finally:
        stop_api(process)


def test_a_real_workers_job_streams_live_with_a_thirty_second_poll(
    slowly_polling_service: RunningService,
) -> None:
    submitted = time.perf_counter()
    job_id = slowly_polling_service.submit(TINY_SPEC)
    arrivals: list[tuple[float, str, dict[str, Any]]] = []
    with (
        httpx.Client(base_url=slowly_polling_service.url, timeout=httpx.Timeout(10, read=40)) as client,
        connect_sse(client, "GET", f"/v1/jobs/{job_id}/events") as source,
    ):
        for message in source.iter_sse():
            if message.data:
                arrivals.append((time.perf_counter() - submitted, message.event, message.json()))
    ended_after = time.perf_counter() - submitted

    # Progress is the latest only, never replayed: a warm worker may be past step 0 when the stream opens.
    progress = [(at, data["step"]) for at, kind, data in arrivals if kind == "progress"]
    assert progress[0][0] < 1, f"first progress {progress[0][0]:.2f} s after submitting"
    assert [step for _, step in progress] == sorted(step for _, step in progress)
    assert [data["status"] for _, kind, data in arrivals if kind == "status"] == [
        "queued",
        "running",
        "succeeded",
    ]
    metric_steps = [data["step"] for _, kind, data in arrivals if kind == "metrics"]
    assert metric_steps == list(range(10, STEPS + 1, 10))
    assert ended_after < POLL_SECONDS / 2, "every event came by notification, none waited for the poll"
