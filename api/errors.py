"""Exception handlers: a database that cannot be reached is a 503 with a clear message, never a 500 (and
one the migrations never ran on a 503 that says to run them); the
503 every route that reads the store documents; the 422 of a query parameter judged in the route (a list's
cursor the store cannot read among them); the one 422 answer of every invalid request, which encodes
whatever input it echoes; and how the routes document and raise their 404s and 409s.

The message never repeats the driver's text, which can carry the connection string.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Mapping
from typing import Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from api.schemas import ErrorOut
from core.store import InvalidCursor

logger = logging.getLogger(__name__)

DATABASE_UNAVAILABLE = "database unavailable: the job store cannot be reached right now; retry shortly"
SCHEMA_MISSING = (
    "database not migrated: its tables are missing or older than this API; run the migrations "
    "(`alembic upgrade head`, or `make migrate`)"
)
# PostgreSQL's undefined_table and undefined_column; SQLite says it in words.
SCHEMA_MISSING_SQLSTATES = frozenset({"42P01", "42703"})
SCHEMA_MISSING_MESSAGES = ("no such table", "no such column")
RETRY_AFTER_SECONDS = "5"
ErrorAnswers = dict[int | str, dict[str, Any]]  # what a route documents in its `responses`


def error_answer(status_code: int, description: str) -> ErrorAnswers:
    """One error answer a route documents: its status, the `{"detail": ...}` body and when it comes."""
    return {status_code: {"model": ErrorOut, "description": description}}


def not_found(what: str) -> HTTPException:
    """The 404 of a job, sweep or dataset that is not there (`what`: "job 1f…", "dataset blobs")."""
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"{what} not found")


def conflict(detail: str) -> HTTPException:
    """The 409 of a request the resource's state refuses; `detail` says why and what to do instead."""
    return HTTPException(status.HTTP_409_CONFLICT, detail=detail)


DATABASE_DOWN = error_answer(503, "the database cannot be reached")


def schema_missing(error: BaseException) -> bool:
    """Whether a database error says a table or column is not there: the migrations have not run."""
    if not isinstance(error, DBAPIError):
        return False
    if getattr(error.orig, "sqlstate", None) in SCHEMA_MISSING_SQLSTATES:
        return True
    return isinstance(error, OperationalError) and any(
        text in str(error.orig) for text in SCHEMA_MISSING_MESSAGES
    )


def database_unavailable(request: Request, error: Exception) -> JSONResponse:
    if schema_missing(error):
        logger.error(
            "database not migrated (%s %s): %s", request.method, request.url.path, error.__cause__ or error
        )
        return JSONResponse(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            content={"detail": SCHEMA_MISSING},
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )
    if isinstance(error, ProgrammingError):  # any other: a bug of ours, not the client's input
        logger.error("database error during %s %s", request.method, request.url.path, exc_info=error)
        return JSONResponse(
            status_code=status.HTTP_500_INTERNAL_SERVER_ERROR, content={"detail": "internal error"}
        )
    logger.warning("database unavailable during %s %s: %s", request.method, request.url.path, error)
    return JSONResponse(
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        content={"detail": DATABASE_UNAVAILABLE},
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


def json_safe(value: Any) -> Any:
    """`value` as strict JSON can carry it: a non-finite float becomes its name ("NaN", "Infinity",
    "-Infinity"), a string's lone surrogates become `\\udXXX` escapes, anything else unknown its text."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return (
            value
            if math.isfinite(value)
            else {math.inf: "Infinity", -math.inf: "-Infinity"}.get(value, "NaN")
        )
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, Mapping):
        return {str(json_safe(key)): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(item) for item in value]
    return json_safe(str(value))


def invalid_request(request: Request, error: Exception) -> JSONResponse:
    """FastAPI's 422 (`detail`: a list of `loc`, `msg`, `type`, `input`, `ctx`), made JSON-safe: the
    default handler fails with a 500 on an input of NaN, 1e999 or a lone surrogate."""
    assert isinstance(error, RequestValidationError)
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": json_safe(error.errors())}
    )


def install_exception_handlers(app: FastAPI) -> None:
    for error_type in (OperationalError, PoolTimeoutError, ProgrammingError):
        app.add_exception_handler(error_type, database_unavailable)
    app.add_exception_handler(RequestValidationError, invalid_request)


def query_error(name: str, value: Any, message: str) -> RequestValidationError:
    """The 422 FastAPI itself answers for an invalid query parameter, for one only the route can judge (a
    cursor the store cannot read, an axis the sweep does not have)."""
    return RequestValidationError(
        [{"loc": ("query", name), "msg": message, "type": "value_error", "input": value}]
    )


@contextlib.contextmanager
def readable_cursor(cursor: str | None) -> Iterator[None]:
    """Around a store's list call: a `cursor` it cannot read is the 422 of the `cursor` query parameter."""
    try:
        yield
    except InvalidCursor as error:
        raise query_error("cursor", cursor, str(error)) from error
