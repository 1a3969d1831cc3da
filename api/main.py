"""The FastAPI application: `create_app(settings)` builds one (tests build their own), `app` is uvicorn's.

The app owns one store and one Celery client (publishing only, by task name); its lifespan runs the
republisher thread that re-publishes jobs the broker lost and the thread that records the single submits'
publications (`api.publication_marks`). With API keys in the settings, `/v1` needs one
(`api.auth`), and so does `/metrics`, what Prometheus scrapes (`api.metrics`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from api import dashboard
from api.auth import ApiKeys
from api.docs import install_docs
from api.errors import install_exception_handlers
from api.hosts import TrustedHosts
from api.jobs.waiting import LiveQueues
from api.limits import UPLOAD_FRAMING_BYTES, BodySizeLimit
from api.metrics.instruments import RequestDurations, StoreCollector, request_duration_histogram
from api.metrics.router import router as metrics_router
from api.publication_marks import PublicationMarks
from api.republisher import Republisher
from api.routes import api_router
from core.queue import make_celery
from core.settings import Settings, get_settings
from core.store import Store

DESCRIPTION = """\
Train small nets with and without batch normalization (Ioffe & Szegedy 2015) and compare what you see.

Submit a job spec to `POST /v1/jobs`, follow it at `GET /v1/jobs/{id}`, read its curves at
`GET /v1/jobs/{id}/metrics` and the paper's Fig. 1 statistics at `GET /v1/jobs/{id}/telemetry`.
With `landscape_every` > 0, `GET /v1/jobs/{id}/landscape` serves the loss-landscape probes along the
gradient of Santurkar et al. (2018), which argue that BN helps by smoothing the landscape.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    store = Store.from_settings(settings)
    celery_app = make_celery(settings)
    republisher = Republisher(store, celery_app, settings)
    publication_marks = PublicationMarks(store)

    @asynccontextmanager
    async def lifespan(running_app: FastAPI) -> AsyncIterator[None]:
        republisher.start()
        publication_marks.start()
        try:
            yield
        finally:
            publication_marks.stop()
            republisher.stop()
            # The event streams' hub (made by the first stream) stops polling and listening.
            event_hub = getattr(running_app.state, "event_hub", None)
            if event_hub is not None:
                await event_hub.close()
                running_app.state.event_hub = None

    app = FastAPI(
        title="bnlab",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc come from install_docs, without a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.celery = celery_app
    app.state.republisher = republisher
    app.state.publication_marks = publication_marks
    app.state.live_queues = LiveQueues(store, settings.lease_seconds)
    app.state.api_keys = ApiKeys.from_settings(settings)
    # A dataset upload may be larger than a spec: its files plus the multipart framing around them.
    upload_limit = settings.max_dataset_bytes + UPLOAD_FRAMING_BYTES
    app.add_middleware(
        BodySizeLimit, max_bytes=settings.max_body_bytes, upload_paths={"/v1/datasets": upload_limit}
    )
    app.state.metrics_registry = CollectorRegistry()
    collector = StoreCollector(store, lambda: _open_streams(app), settings.lease_seconds)
    app.state.metrics_registry.register(collector)
    app.add_middleware(RequestDurations, histogram=request_duration_histogram(app.state.metrics_registry))
    app.add_middleware(TrustedHosts, trusted=settings.trusted_hosts.split(","))  # outermost: checked first
    install_exception_handlers(app)
    app.include_router(api_router)
    app.include_router(metrics_router)  # /metrics, behind the API keys like /v1
    app.include_router(dashboard.router)  # the pages at `/`, open: the API key guards /v1 only
    install_docs(app)
    return app


def _open_streams(app: FastAPI) -> int:
    """The event streams the app serves (the hub exists once the first stream opened)."""
    event_hub = getattr(app.state, "event_hub", None)
    return event_hub.open_streams if event_hub is not None else 0


app = create_app()
