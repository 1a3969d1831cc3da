"""`GET /metrics`: what an operator scrapes, in Prometheus' text format (`api.metrics.instruments`).

Behind the same API keys as `/v1` when keys are configured (a scraper sends `Authorization: Bearer <key>`;
a read-only key will do)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.auth import AUTH_RESPONSES, require_api_key
from api.errors import DATABASE_DOWN

router = APIRouter(tags=["operations"], dependencies=[Depends(require_api_key)])


@router.get(
    "/metrics",
    status_code=status.HTTP_200_OK,
    summary="Prometheus metrics: jobs by status and queue, queue depth, training rate, streams, latency",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus' text exposition format"},
        **AUTH_RESPONSES,
        **DATABASE_DOWN,
    },
)
def read_metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST)
