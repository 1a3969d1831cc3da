"""One bad reader must not freeze everyone's streams: a `Last-Event-ID` beyond its column's range is a 422
at the route, and a read that fails for one stream ends that stream alone while the others go on."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.events.hub import Batch, EventHub, StreamPosition, Subscription
from core.results import MetricPoint
from core.spec import JobSpec
from core.store import Store
from tests.api.conftest import TINY_SPEC, submit
from tests.fixtures.proxy import CuttableProxy

OWNER = "test-owner"
BEYOND_INT32 = 2**31


@pytest.fixture
def postgres_store(migrated_postgres_url: str) -> Iterator[Store]:
    store = Store(migrated_postgres_url)
    try:
        yield store
    finally:
        store.dispose()


def running_job_with_metrics(store: Store, steps: list[int]) -> str:
    job = store.create_job(JobSpec.model_validate(TINY_SPEC))
    assert store.acquire_lease(job.id, OWNER, lease_seconds=60).acquired
    store.write_metrics(job.id, [MetricPoint("val_accuracy", step, 0.5) for step in steps])
    return job.id


async def batches_until_quiet(subscription: Subscription, quiet_seconds: float = 1.0) -> list[Batch]:
    batches: list[Batch] = []
    while True:
        try:
            batches.append(await asyncio.wait_for(subscription.batches.get(), quiet_seconds))
        except TimeoutError:
            return batches
        if batches[-1].finished:
            return batches


def metric_ids(batches: list[Batch]) -> list[str]:
    return [event.id or "" for batch in batches for event in batch.events if event.event == "metrics"]


def test_a_stream_whose_read_fails_ends_alone_and_the_others_get_their_events(
    postgres_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL refuses a step beyond its int column ("integer out of range"): that stream ends, a stream
    on another job is served as if nothing happened, and the failure is logged once, not at every poll."""
    poisoned_job = running_job_with_metrics(postgres_store, [10, 20])
    other_job = running_job_with_metrics(postgres_store, [10, 20, 30])

    async def scenario() -> tuple[list[Batch], list[Batch], list[Batch]]:
        hub = EventHub(postgres_store, poll_seconds=0.05)
        try:
            poisoned = hub.subscribe(poisoned_job, StreamPosition(statuses_sent=2, metric_step=BEYOND_INT32))
            other = hub.subscribe(other_job, StreamPosition())
            poisoned_batches, other_batches = await asyncio.gather(
                batches_until_quiet(poisoned), batches_until_quiet(other)
            )
            # The job itself is fine: a new stream on it, from the start, gets its events.
            again = await batches_until_quiet(hub.subscribe(poisoned_job, StreamPosition()))
            return poisoned_batches, other_batches, again
        finally:
            await hub.close()

    poisoned_batches, other_batches, again = asyncio.run(scenario())
    assert poisoned_batches and poisoned_batches[-1].finished, "the failing stream ends"
    assert metric_ids(other_batches) == ["metrics:10", "metrics:20", "metrics:30"]
    assert metric_ids(again) == ["metrics:10", "metrics:20"]
    failures = [record for record in caplog.records if "event stream" in record.getMessage()]
    assert len(failures) == 1, [record.getMessage() for record in failures]


@pytest.mark.parametrize(
    "last_event_id", [f"metrics:{BEYOND_INT32}", "metrics:9999999999", "status:4294967296"]
)
def test_a_last_event_id_beyond_its_columns_range_is_a_422_naming_the_header(
    client: TestClient, last_event_id: str
) -> None:
    job = submit(client)
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202  # its stream would end at once
    response = client.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": last_event_id})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["header", "last-event-id"]


def test_a_database_outage_is_logged_once_and_the_streams_resume_after_it(
    postgres_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """While the database is down the poller retries every poll and says so once (it used to log a long
    traceback 4 times a second); once it is back the stream gets the events written meanwhile."""
    job_id = running_job_with_metrics(postgres_store, [10])
    proxy = CuttableProxy(sa.engine.make_url(postgres_store.url).port or 5432)
    proxied = Store(
        sa.engine.make_url(postgres_store.url).set(host="127.0.0.1", port=proxy.port).render_as_string(False)
    )

    async def scenario() -> tuple[list[Batch], list[Batch], int]:
        hub = EventHub(proxied, poll_seconds=0.05)
        try:
            subscription = hub.subscribe(job_id, StreamPosition())
            before = await batches_until_quiet(subscription)
            proxy.go_down()
            polls = hub.polls
            await asyncio.sleep(1.5)  # some thirty polls fail meanwhile
            await asyncio.to_thread(
                postgres_store.write_metrics, job_id, [MetricPoint("val_accuracy", 20, 0.6)]
            )
            proxy.come_back()
            after = await batches_until_quiet(subscription, quiet_seconds=3)
            return before, after, hub.polls - polls
        finally:
            await hub.close()

    try:
        before, after, polls_while_down = asyncio.run(scenario())
    finally:
        proxied.dispose()
        proxy.close()
    assert metric_ids(before) == ["metrics:10"]
    assert metric_ids(after) == ["metrics:20"]
    records = [record for record in caplog.records if "reading job events" in record.getMessage()]
    assert len(records) == 2, [record.getMessage() for record in records]  # "failed, retrying", "works again"
    assert not any(record.exc_info for record in records), "an outage is no bug: no traceback"
    assert polls_while_down >= 1
