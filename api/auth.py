"""API keys: when any are configured, every `/v1` route and `/metrics` need `Authorization: Bearer <key>`.

Keys come from settings, comma-separated: `api_keys` may do anything, `read_only_api_keys` may only read
(GET and HEAD). No keys at all leaves the API open, as the embedded mode on one's own machine wants it.
`/healthz`, `/readyz`, the docs and the dashboard's page stay open: they carry no results.

- no key, a malformed header or a key that is not configured → 401 (with `WWW-Authenticate: Bearer`);
- a read-only key on a route that writes → 403.

A presented key is compared with every configured key in constant time (`hmac.compare_digest` on SHA-256
digests, so neither the position of the first differing character nor the keys' lengths show in the
answer's timing), and it never appears in an answer or a log line.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.schemas import ErrorOut
from core.settings import Settings

Access = Literal["full", "read_only"]
READ_METHODS = frozenset({"GET", "HEAD"})

MISSING_OR_WRONG_KEY = "missing or unknown API key: send the header `Authorization: Bearer <key>`"
READ_ONLY_KEY = "this API key may only read (GET); writing needs a full-access key"

bearer = HTTPBearer(
    auto_error=False,  # the answers (401, 403) and their wording are this module's
    description="a key from BNLAB_API_KEYS (or BNLAB_READ_ONLY_API_KEYS for reading only)",
)

AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "API keys are configured and none (or an unknown one) was sent"},
    403: {"model": ErrorOut, "description": "a read-only API key was sent to a route that writes"},
}


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _parse(keys: str) -> tuple[bytes, ...]:
    return tuple(_digest(key.strip()) for key in keys.split(",") if key.strip())


@dataclass(frozen=True)
class ApiKeys:
    """The configured keys, kept as digests only."""

    full_access: tuple[bytes, ...]
    read_only: tuple[bytes, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKeys:
        return cls(_parse(settings.api_keys), _parse(settings.read_only_api_keys))

    @property
    def required(self) -> bool:
        return bool(self.full_access or self.read_only)

    def access_of(self, presented: str) -> Access | None:
        """What `presented` may do; None for a key that is not configured. Every configured key is
        compared, whatever matched before, so the time taken does not depend on which one matched."""
        digest = _digest(presented)
        full = False
        for key in self.full_access:
            full |= hmac.compare_digest(digest, key)
        read_only = False
        for key in self.read_only:
            read_only |= hmac.compare_digest(digest, key)
        if full:
            return "full"
        return "read_only" if read_only else None


async def require_api_key(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    """The dependency of every `/v1` route: passes when no keys are configured or the key may do this.
    `async def`: a few digests on the event loop cost less than a hop to the request thread pool."""
    keys: ApiKeys = request.app.state.api_keys
    if not keys.required:
        return
    access = keys.access_of(credentials.credentials) if credentials is not None else None
    if access is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, detail=MISSING_OR_WRONG_KEY, headers={"WWW-Authenticate": "Bearer"}
        )
    if access == "read_only" and request.method not in READ_METHODS:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=READ_ONLY_KEY)
