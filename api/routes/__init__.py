"""The aggregator: includes one router per resource, nothing else."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import health, jobs, landscape

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(jobs.router)
api_router.include_router(landscape.router)
