"""Trusted hosts: the API answers only requests whose `Host` header names it (`BNLAB_TRUSTED_HOSTS`).

This stops DNS rebinding: a web page the user visits points a name of its own at 127.0.0.1 and has the
browser call the open (no-key) embedded API with it; the browser then sends that name as `Host`, which
is not trusted, so the answer is a 400. The default trusts localhost, 127.0.0.1 and [::1]; `make run`
adds the address it binds; a deployment lists the names its clients use (`*.example.com` matches
subdomains, `*` anything). The probes answer any host: they reveal nothing, and orchestrators call them
by the container's address.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
UNTRUSTED_HOST = json.dumps(
    {"detail": "this Host header is not one this API answers to; add it to BNLAB_TRUSTED_HOSTS"}
).encode()


def host_name(host_header: str) -> str:
    """The host of a `Host` header, without its port, lowercased (`[::1]:8000` → `[::1]`)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.split(":", 1)[0]


def is_trusted(host_header: str, trusted: list[str]) -> bool:
    host = host_name(host_header)
    for pattern in trusted:
        if pattern == "*" or host == pattern:
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
    return False


class TrustedHosts:
    """Pure ASGI middleware: a request whose Host is not trusted gets 400 `{"detail": ...}`."""

    def __init__(self, app: ASGIApp, trusted: list[str]) -> None:
        self.app = app
        self.trusted = [pattern.strip().lower() for pattern in trusted if pattern.strip()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
        if is_trusted(host, self.trusted):
            await self.app(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 400,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(UNTRUSTED_HOST)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": UNTRUSTED_HOST})
