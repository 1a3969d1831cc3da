"""The FastAPI application: `create_app(settings)` builds one (tests build their own), `app` is uvicorn's.

The app owns one store and one Celery client (publishing only, by task name); its lifespan runs the
sweeper thread that re-publishes jobs the broker lost. With API keys in the settings, `/v1` needs one
(`api.auth`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import dashboard
from api.auth import ApiKeys
from api.errors import install_exception_handlers
from api.hosts import TrustedHosts
from api.limits import BodySizeLimit
from api.routes import api_router
from api.sweeper import Sweeper
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
    sweeper = Sweeper(store, celery_app, settings)

    @asynccontextmanager
    async def lifespan(running_app: FastAPI) -> AsyncIterator[None]:
        sweeper.start()
        try:
            yield
        finally:
            sweeper.stop()
            # The event streams' hub (made by the first stream) stops polling and listening.
            event_hub = getattr(running_app.state, "event_hub", None)
            if event_hub is not None:
                await event_hub.close()
                running_app.state.event_hub = None

    app = FastAPI(title="bnlab", version="1", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.store = store
    app.state.celery = celery_app
    app.state.sweeper = sweeper
    app.state.api_keys = ApiKeys.from_settings(settings)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(TrustedHosts, trusted=settings.trusted_hosts.split(","))  # outermost: checked first
    install_exception_handlers(app)
    app.include_router(api_router)
    app.include_router(dashboard.router)  # the pages at `/`, open: the API key guards /v1 only
    return app


app = create_app()
