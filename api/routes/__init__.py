"""The aggregator: includes one router per resource, nothing else."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import compare, events, health, jobs, landscape, plots, sweeps

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(jobs.router)
api_router.include_router(landscape.router)
api_router.include_router(events.router)
api_router.include_router(compare.router)
api_router.include_router(sweeps.router)
api_router.include_router(plots.router)
