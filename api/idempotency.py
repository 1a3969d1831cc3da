"""`Idempotency-Key` on `POST /v1/jobs` and `POST /v1/sweeps`: a retry gets the original answer.

The same key with the same body within 24 h answers what the first request answered (its status code and
body: the same id), with `Idempotent-Replayed: true`, and creates nothing. The same key with another body
is a 422 naming the header. Two requests with one key at once create once: the second waits for the
first's answer (at most `WAIT_FOR_FIRST_SECONDS`, then a 409 to retry). Bodies are compared by the
SHA-256 of their validated form, so key order and spelled-out defaults do not make a body "another".
Keys are per route, not per API key: clients should use random ones (a UUID4).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Header, HTTPException, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.schemas import ErrorOut
from core.db.tables import IDEMPOTENCY_KEY_LENGTH
from core.store import StoreInterface

WINDOW_SECONDS = 24 * 3600
ABANDONED_AFTER_SECONDS = 120  # a claim unanswered this long belongs to a request that died
WAIT_FOR_FIRST_SECONDS = 10
WAIT_STEP_SECONDS = 0.05

IdempotencyKey = Annotated[
    str | None,
    Header(
        pattern=rf"^[!-~]{{1,{IDEMPOTENCY_KEY_LENGTH}}}$",
        description="a key of your choice (a UUID4): a retry with the same key and body within 24 h gets "
        "the original answer and creates nothing",
    ),
]
IDEMPOTENCY_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorOut, "description": "a request with this Idempotency-Key is still being answered"}
}


def body_digest(body: BaseModel) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def answer_once(
    store: StoreInterface,
    route: str,
    key: str | None,
    body: BaseModel,
    create: Callable[[], BaseModel],
    status_code: int = status.HTTP_201_CREATED,
) -> BaseModel | JSONResponse:
    """`create()`'s answer, or with a key already used for this body, the answer stored for it."""
    if key is None:
        return create()
    digest = body_digest(body)
    deadline = time.monotonic() + WAIT_FOR_FIRST_SECONDS
    while (
        stored := store.claim_idempotency_key(route, key, digest, WINDOW_SECONDS, ABANDONED_AFTER_SECONDS)
    ) is not None:
        if stored.request_sha256 != digest:
            raise RequestValidationError(
                [
                    {
                        "loc": ("header", "idempotency-key"),
                        "msg": "this Idempotency-Key was used with another body within 24 h",
                        "type": "value_error",
                        "input": key,
                    }
                ]
            )
        if stored.status_code is not None:
            return JSONResponse(stored.response, stored.status_code, headers={"Idempotent-Replayed": "true"})
        if time.monotonic() > deadline:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                detail="a request with this Idempotency-Key is still being answered; retry",
            )
        time.sleep(WAIT_STEP_SECONDS)
    try:
        answer = create()
    except BaseException:
        store.release_idempotency_key(route, key)
        raise
    store.complete_idempotency_key(route, key, status_code, answer.model_dump(mode="json"))
    return answer
