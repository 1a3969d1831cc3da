"""Liveness (`/healthz`: the process answers) and readiness (`/readyz`: database and broker reachable).

Both are `async def`, so neither waits for a thread of the pool that sync routes share (a burst of plot
requests fills it; a liveness probe that queued behind them would time out and get a healthy API
restarted). `/healthz` touches nothing. `/readyz` runs its two probes at once in threads of their own,
outside that pool, and counts a probe that has not answered within `READY_WITHIN_SECONDS` as down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from fastapi import APIRouter, Response, status

from api.dependencies import CeleryDep, StoreDep
from api.probes import broker_reachable, database_state
from api.schemas import HealthOut, ReadinessOut

router = APIRouter(tags=["health"])

READY_WITHIN_SECONDS = 3.0
Answer = TypeVar("Answer")


@router.get("/healthz", status_code=status.HTTP_200_OK, response_model=HealthOut, summary="Liveness")
async def healthz() -> HealthOut:
    return HealthOut()


async def answered(probe: Callable[[], Answer], too_slow: Answer) -> Answer:
    """The probe's answer, run outside the request pool; `too_slow` when it takes longer than the bound."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(probe), READY_WITHIN_SECONDS)
    except TimeoutError:
        return too_slow


@router.get(
    "/readyz",
    status_code=status.HTTP_200_OK,
    response_model=ReadinessOut,
    summary="Readiness: the database and the broker are reachable",
    responses={503: {"model": ReadinessOut, "description": "the database or the broker is unreachable"}},
)
async def readyz(store: StoreDep, celery_app: CeleryDep, response: Response) -> ReadinessOut:
    database, broker_ok = await asyncio.gather(
        answered(lambda: database_state(store), "unavailable"),
        answered(lambda: broker_reachable(celery_app), False),
    )
    ready = database == "ok" and broker_ok
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return ReadinessOut(
        status="ready" if ready else "unavailable",
        database=database,
        broker="ok" if broker_ok else "unavailable",
    )
