"""What `GET /metrics` exports, in Prometheus' text format through the official client library.

Each app has a registry of its own (tests build several apps in one process). Counts come from the
database at scrape time, one grouped query each, so every API replica reports the same figures:

- `bnlab_jobs{status, queue}`: jobs by status and by the queue their spec's device routes them to;
- `bnlab_queue_depth{queue}`: the queued jobs of each queue;
- `bnlab_training_model_steps_per_second`: the latest rate of every running job, summed (each model of
  a fused group counts);
- `bnlab_workers_live{device}`: the live workers of the registry by device kind (`cpu`, `cuda`);
- `bnlab_event_streams_open`: the job event streams this API process is serving;
- `bnlab_http_request_duration_seconds{method, route, status}`: a histogram of the time to each
  answer's first byte (a stream counts until it starts, not while it stays open), by route template
  (`/v1/jobs/{job_id}`), so ids do not multiply the series.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.queue import QUEUES
from core.spec import queue_for_device
from core.store import StoreInterface


class StoreCollector(Collector):
    """Reads the job counts and the training rate from the store at each scrape."""

    def __init__(
        self, store: StoreInterface, open_streams: Callable[[], int], worker_alive_seconds: float
    ) -> None:
        self._store = store
        self._open_streams = open_streams
        self._worker_alive_seconds = worker_alive_seconds

    def collect(self) -> Iterator[Metric]:
        by_status_and_queue: dict[tuple[str, str], int] = {}
        for counted in self._store.job_counts():  # one entry per status and device: a handful
            key = (counted.status, queue_for_device(counted.device))
            by_status_and_queue[key] = by_status_and_queue.get(key, 0) + counted.count
        jobs = GaugeMetricFamily("bnlab_jobs", "Jobs by status and queue.", labels=["status", "queue"])
        for (status, queue), count in sorted(by_status_and_queue.items()):
            jobs.add_metric([status, queue], count)
        yield jobs
        depth = GaugeMetricFamily("bnlab_queue_depth", "Queued jobs per queue.", labels=["queue"])
        for queue in QUEUES:
            depth.add_metric([queue], by_status_and_queue.get(("queued", queue), 0))
        yield depth
        yield GaugeMetricFamily(
            "bnlab_training_model_steps_per_second",
            "Training steps per second summed over the running jobs (each model of a fused group counts).",
            value=self._store.training_model_steps_per_second(),
        )
        workers = GaugeMetricFamily("bnlab_workers_live", "Live workers by device kind.", labels=["device"])
        by_device = {"cpu": 0, "cuda": 0}
        for _, device in self._store.live_worker_devices(self._worker_alive_seconds):
            kind = str(device.get("kind", "cpu"))
            by_device[kind] = by_device.get(kind, 0) + 1
        for kind, count in sorted(by_device.items()):
            workers.add_metric([kind], count)
        yield workers
        yield GaugeMetricFamily(
            "bnlab_event_streams_open",
            "Job event streams this API process is serving.",
            value=self._open_streams(),
        )


def request_duration_histogram(registry: CollectorRegistry) -> Histogram:
    return Histogram(
        "bnlab_http_request_duration_seconds",
        "Time to the first byte of each answer, by method, route template and status.",
        labelnames=["method", "route", "status"],
        registry=registry,
    )


class RequestDurations:
    """ASGI middleware that times every HTTP request into the histogram (a pure ASGI one, so streamed
    answers pass through untouched)."""

    def __init__(self, app: ASGIApp, histogram: Histogram) -> None:
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app raises before it starts an answer

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                self._observe(scope, status, time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        except BaseException:
            self._observe(scope, status, time.perf_counter() - started)
            raise

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"  # unknown paths share one series
        self.histogram.labels(scope["method"], template, str(status)).observe(seconds)
