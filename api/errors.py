"""Exception handlers: a database that cannot be reached is a 503 with a clear message, never a 500.

The message never repeats the driver's text, which can carry the connection string.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

logger = logging.getLogger(__name__)

DATABASE_UNAVAILABLE = "database unavailable: the job store cannot be reached right now; retry shortly"
RETRY_AFTER_SECONDS = "5"


def database_unavailable(request: Request, error: Exception) -> JSONResponse:
    logger.warning("database unavailable during %s %s: %s", request.method, request.url.path, error)
    return JSONResponse(
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        content={"detail": DATABASE_UNAVAILABLE},
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


def install_exception_handlers(app: FastAPI) -> None:
    for error_type in (OperationalError, PoolTimeoutError):
        app.add_exception_handler(error_type, database_unavailable)
