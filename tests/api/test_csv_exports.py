"""CSV answers of job metrics and compare against the running service: `?format=csv` and `Accept: text/csv`
give the same lines as the JSON, and 50,000 points written through the store come back in full, streamed in
chunks (the API never builds the whole answer), each value as written; the store is read 2,000 steps at a
time, each chunk written out before the next read."""

from __future__ import annotations

import csv
import io
import math

import bnlab
import httpx
import pytest

from api.exports import STEPS_PER_READ, metric_lines
from core.results import MetricPoint
from core.spec import JobSpec
from core.store import Store
from core.store.views import MetricStep
from tests.fixtures.service import NEVER_STARTS_SPEC, TINY_SPEC, RunningService
from tests.fixtures.worker import RunningWorker

STEPS = 12_500
NAMES = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")  # 4 × 12,500 = 50,000 points


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_job_metrics_as_csv_equal_the_json(sqlite_service: RunningService) -> None:
    job_id = sqlite_service.submit({**TINY_SPEC, "name": "csv-export"})
    sqlite_service.wait_until_finished(job_id)
    url = f"{sqlite_service.url}/v1/jobs/{job_id}/metrics"
    series = httpx.get(url, params={"max_points": 10_000}).json()["series"]

    by_query = httpx.get(url, params={"format": "csv"})
    by_header = httpx.get(url, headers={"Accept": "text/csv"})
    assert by_query.headers["content-type"] == "text/csv; charset=utf-8"
    assert by_query.text == by_header.text
    assert by_query.text.splitlines()[0] == "job_id,name,step,value"
    rows = rows_of(by_query.text)
    from_csv = {(row["name"], int(row["step"])): float(row["value"]) for row in rows}
    from_json = {
        (name, step): value
        for name, points in series.items()
        for step, value in zip(points["steps"], points["values"], strict=True)
    }
    assert from_csv == from_json and {row["job_id"] for row in rows} == {job_id}

    only_accuracy = rows_of(httpx.get(url, params={"format": "csv", "name": "val_accuracy"}).text)
    assert {row["name"] for row in only_accuracy} == {"val_accuracy"}
    assert httpx.get(url, params={"format": "xml"}).status_code == 422
    assert httpx.get(url, headers={"Accept": "application/json"}).json()["job_id"] == job_id


def test_compare_as_csv_has_a_line_per_job(sqlite_service: RunningService) -> None:
    ids = [
        sqlite_service.submit({**TINY_SPEC, "name": "csv-bn", "target_accuracy": 0.3}),
        sqlite_service.submit(
            {**TINY_SPEC, "name": "csv-plain", "batch_norm": False, "target_accuracy": 0.3}
        ),
    ]
    for job_id in ids:
        sqlite_service.wait_until_finished(job_id)
    url = f"{sqlite_service.url}/v1/compare"
    jobs = httpx.get(url, params={"ids": ids}).json()["jobs"]
    answer = httpx.get(url, params={"ids": ids}, headers={"Accept": "text/csv"})
    assert answer.headers["content-type"].startswith("text/csv")
    rows = rows_of(answer.text)
    assert [row["id"] for row in rows] == [job["id"] for job in jobs]
    for row, job in zip(rows, jobs, strict=True):
        assert float(row["final"]) == job["final"] and row["spec.batch_norm"] == str(
            job["spec_diff"]["batch_norm"]
        )
        assert row["steps_to_target"] == (
            "" if job["steps_to_target"] is None else str(job["steps_to_target"])
        )
    missing = httpx.get(url, params={"ids": [ids[0], "0" * 32], "format": "csv"})
    assert missing.status_code == 404 and "0" * 32 in missing.json()["detail"]


@pytest.mark.timeout(240)
def test_fifty_thousand_points_stream_in_chunks(
    sqlite_service: RunningService, sqlite_worker: RunningWorker
) -> None:
    job_id = sqlite_service.submit({**NEVER_STARTS_SPEC, "name": "csv-50k"})
    store = Store(sqlite_worker.settings.database_url)
    try:
        store.write_metrics(
            job_id,
            [
                MetricPoint(name, step, math.sin(step / 100) + index)
                for step in range(STEPS)
                for index, name in enumerate(NAMES)
            ],
        )
    finally:
        store.dispose()

    url = f"{sqlite_service.url}/v1/jobs/{job_id}/metrics"
    chunks = 0
    body = io.BytesIO()
    with httpx.stream("GET", url, params={"format": "csv"}, timeout=120) as answer:
        assert answer.status_code == 200
        assert answer.headers.get("transfer-encoding") == "chunked" and "content-length" not in answer.headers
        for chunk in answer.iter_raw():
            chunks += 1
            body.write(chunk)
    rows = rows_of(body.getvalue().decode())
    assert len(rows) == 50_000
    # One chunk per store read of 2,000 steps (and the header): the answer was never built whole.
    assert chunks >= STEPS // 2000
    last = rows[-1]
    assert (last["name"], int(last["step"])) == ("val_loss", STEPS - 1)
    assert float(last["value"]) == math.sin((STEPS - 1) / 100) + NAMES.index("val_loss")

    with bnlab.Client(url=sqlite_service.url) as client:
        frame = client.metrics([job_id])
    assert len(frame) == 50_000 and frame["value"].iloc[-1] == float(last["value"])


class CountingStore:
    """The real store, counting its chunked reads."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.reads = 0

    def metric_steps_after(self, job_id: str, after_step: int, max_steps: int) -> list[MetricStep]:
        self.reads += 1
        return self.store.metric_steps_after(job_id, after_step, max_steps)


def test_the_csv_is_read_and_written_a_chunk_at_a_time(store: Store) -> None:
    job_id = store.create_job(JobSpec.model_validate(TINY_SPEC)).id
    store.write_metrics(job_id, [MetricPoint("val_accuracy", step, step / 10_000) for step in range(10_000)])
    counting = CountingStore(store)
    lines = metric_lines(counting, job_id, None)
    assert next(lines) == "job_id,name,step,value\n" and counting.reads == 0
    first = next(lines)
    assert counting.reads == 1 and first.count("\n") == STEPS_PER_READ
    rest = list(lines)
    # Five chunks of 2,000 steps, then the read that finds nothing more.
    assert counting.reads == 6 and len(rest) == 4
    assert rest[-1].splitlines()[-1] == f"{job_id},val_accuracy,9999,0.9999"
