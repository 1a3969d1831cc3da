"""The probes answer while every thread of the request pool is busy: `/healthz` touches neither the pool
nor the database, and `/readyz` probes outside the pool within a bound."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient

from api.main import create_app
from core.settings import Settings

REQUEST_POOL_THREADS = 40  # AnyIO's default limit for sync routes
SLOW_SECONDS = 4.0


def test_the_probes_answer_at_once_while_slow_sync_requests_fill_the_thread_pool(
    api_settings: Settings,
) -> None:
    app = create_app(api_settings)
    busy = threading.Semaphore(0)

    def slow() -> dict[str, str]:  # a sync route, like a plot being drawn
        busy.release()
        time.sleep(SLOW_SECONDS)
        return {}

    app.add_api_route("/slow", slow)
    with TestClient(app) as client, ThreadPoolExecutor(REQUEST_POOL_THREADS * 2) as pool:
        slow_requests = [pool.submit(client.get, "/slow") for _ in range(REQUEST_POOL_THREADS * 2)]
        for _ in range(REQUEST_POOL_THREADS):
            assert busy.acquire(timeout=10), "the slow requests did not fill the pool"

        started = time.perf_counter()
        health = client.get("/healthz")
        health_seconds = time.perf_counter() - started
        started = time.perf_counter()
        ready = client.get("/readyz")
        ready_seconds = time.perf_counter() - started
        assert all(request.result().status_code == 200 for request in slow_requests)
    app.state.store.dispose()

    assert health.status_code == 200 and health_seconds < 0.5, f"/healthz took {health_seconds:.2f} s"
    assert ready.status_code == 200 and ready_seconds < 2, f"/readyz took {ready_seconds:.2f} s"
