"""Liveness (`/healthz`: the process answers) and readiness (`/readyz`: database and broker reachable)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from api.dependencies import CeleryDep, StoreDep
from api.probes import broker_reachable, database_reachable
from api.schemas import HealthOut, ReadinessOut

router = APIRouter(tags=["health"])


@router.get("/healthz", status_code=status.HTTP_200_OK, response_model=HealthOut, summary="Liveness")
def healthz() -> HealthOut:
    return HealthOut()


@router.get(
    "/readyz",
    status_code=status.HTTP_200_OK,
    response_model=ReadinessOut,
    summary="Readiness: the database and the broker are reachable",
    responses={503: {"model": ReadinessOut, "description": "the database or the broker is unreachable"}},
)
def readyz(store: StoreDep, celery_app: CeleryDep, response: Response) -> ReadinessOut:
    database_ok = database_reachable(store)
    broker_ok = broker_reachable(celery_app)
    ready = database_ok and broker_ok
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return ReadinessOut(
        status="ready" if ready else "unavailable",
        database="ok" if database_ok else "unavailable",
        broker="ok" if broker_ok else "unavailable",
    )
