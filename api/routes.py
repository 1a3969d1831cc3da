"""The aggregator: includes one router per resource, nothing else.

`/healthz` and `/readyz` stay open; every `/v1` router is included behind the API-key dependency, so a
resource added here is protected (and documents its 401 and 403) without a word of its own.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from api.auth import AUTH_RESPONSES, require_api_key
from api.compare.router import router as compare_router
from api.datasets.router import router as datasets_router
from api.events.router import router as events_router
from api.health.router import router as health_router
from api.jobs.router import router as jobs_router
from api.plots.router import router as plots_router
from api.sweeps.router import router as sweeps_router
from api.workers.router import router as workers_router

v1_router = APIRouter(dependencies=[Depends(require_api_key)], responses=AUTH_RESPONSES)
v1_router.include_router(jobs_router)
v1_router.include_router(events_router)
v1_router.include_router(compare_router)
v1_router.include_router(sweeps_router)
v1_router.include_router(plots_router)
v1_router.include_router(datasets_router)
v1_router.include_router(workers_router)

api_router = APIRouter()
api_router.include_router(health_router)
api_router.include_router(v1_router)
