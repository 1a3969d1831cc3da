"""A request-body size limit (413), enforced before FastAPI parses anything, and the answers every route
that takes a body documents for bodies refused before the route runs.

A declared Content-Length over the limit is refused at once; a body without one (chunked) is read up to
the limit and then replayed to the app, so no request can make the API buffer more than the limit.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.schemas import ErrorOut

BODY_REFUSED: dict[int | str, dict[str, Any]] = {
    # FastAPI's own answer to bytes it cannot decode as JSON text (e.g. not UTF-8); well-formed JSON that
    # is not a valid spec is a 422.
    400: {"model": ErrorOut, "description": "the request body could not be read as JSON text"},
    413: {"model": ErrorOut, "description": "the request body is larger than the configured limit"},
}


UPLOAD_FRAMING_BYTES = 64 * 1024  # multipart boundaries and the small form fields beside the files


class BodySizeLimit:
    """Pure ASGI middleware: answers 413 `{"detail": ...}` to bodies larger than `max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int, upload_paths: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.upload_paths = (
            upload_paths or {}
        )  # path → its own limit (a dataset upload is larger than a spec)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.upload_paths.get(scope["path"], self.max_bytes)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > max_bytes:
                await self._refuse(send, max_bytes)
                return
            await self.app(scope, receive, send)
            return
        if dict(scope["headers"]).get(b"transfer-encoding") is None:
            await self.app(scope, receive, send)  # no body at all
            return
        messages: list[Message] = []
        received = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            received += len(message.get("body", b""))
            if received > max_bytes:
                await self._refuse(send, max_bytes)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send, max_bytes: int) -> None:
        body = json.dumps({"detail": f"request body larger than {max_bytes} bytes"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
