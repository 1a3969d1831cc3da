"""Exception handlers: a database that cannot be reached is a 503 with a clear message, never a 500; the
503 every route that reads the store documents; and the 422 of a query parameter judged in the route.

The message never repeats the driver's text, which can carry the connection string.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from api.schemas import ErrorOut

logger = logging.getLogger(__name__)

DATABASE_UNAVAILABLE = "database unavailable: the job store cannot be reached right now; retry shortly"
RETRY_AFTER_SECONDS = "5"
DATABASE_DOWN: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorOut, "description": "the database cannot be reached"}
}


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


def query_error(name: str, value: Any, message: str) -> RequestValidationError:
    """The 422 FastAPI itself answers for an invalid query parameter, for one only the route can judge (a
    cursor the store cannot read, an axis the sweep does not have)."""
    return RequestValidationError(
        [{"loc": ("query", name), "msg": message, "type": "value_error", "input": value}]
    )
