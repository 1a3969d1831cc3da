"""The aggregator: includes one router per resource, nothing else.

`/healthz` and `/readyz` stay open; every `/v1` router is included behind the API-key dependency, so a
resource added here is protected (and documents its 401 and 403) without a word of its own.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from api.auth import AUTH_RESPONSES, require_api_key
from api.routes import compare, events, health, jobs, landscape, plots, sweeps, workers

v1_router = APIRouter(dependencies=[Depends(require_api_key)], responses=AUTH_RESPONSES)
v1_router.include_router(jobs.router)
v1_router.include_router(landscape.router)
v1_router.include_router(events.router)
v1_router.include_router(compare.router)
v1_router.include_router(sweeps.router)
v1_router.include_router(plots.router)
v1_router.include_router(workers.router)

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(v1_router)
