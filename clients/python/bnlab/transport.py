"""The HTTP layer of the client: base URL, API key, JSON in and out, and every failure as a typed
`bnlab.errors.BnlabError` with one clear line."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import httpx

from bnlab.errors import BnlabError, ConnectionFailed, error_for_response, not_bnlab

DEFAULT_URL = "http://127.0.0.1:8000"
REQUEST_TIMEOUT_SECONDS = 30.0

QueryParams = Mapping[str, str | int | float | bool | Sequence[str] | None]


class Transport:
    """Talks to one bnlab service. Use as a context manager (it holds a connection pool)."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        timeout: float = REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def __enter__(self) -> Transport:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def get(self, path: str, params: QueryParams | None = None) -> Any:
        """GET a JSON answer."""
        return self._request("GET", path, params=params).json()

    def post(self, path: str, body: object = None) -> Any:
        """POST a JSON body; returns the JSON answer (None when the answer has no body)."""
        response = self._request("POST", path, json=body)
        return response.json() if response.content else None

    def post_files(self, path: str, data: Mapping[str, str], files: Mapping[str, tuple[str, bytes]]) -> Any:
        """POST a multipart form (a dataset upload: its files and the form fields beside them); returns
        the JSON answer."""
        return self._request("POST", path, data=dict(data), files=dict(files)).json()

    def patch(self, path: str, body: object) -> Any:
        """PATCH a JSON body; returns the JSON answer."""
        return self._request("PATCH", path, json=body).json()

    def delete(self, path: str, timeout: float | None = None) -> None:
        """DELETE; `timeout` (seconds) when the answer may take longer than a read (deleting a running job
        waits for it to stop)."""
        if timeout is None:
            self._request("DELETE", path, expect_json=False)
        else:
            self._request("DELETE", path, expect_json=False, timeout=timeout)

    def get_bytes(self, path: str, params: QueryParams | None = None) -> bytes:
        """GET a binary answer (a PNG or SVG plot)."""
        return self._request("GET", path, expect_json=False, params=params).content

    @contextmanager
    def stream(
        self, path: str, params: QueryParams | None = None, headers: Mapping[str, str] | None = None
    ) -> Iterator[httpx.Response]:
        """GET an answer to read in chunks (`iter_bytes`, `iter_lines`) without holding it whole."""
        request = self._http.build_request("GET", path, params=_given(params), headers=dict(headers or {}))
        try:
            response = self._http.send(request, stream=True)
        except httpx.TransportError as error:
            raise self.unreachable(error) from None
        try:
            if response.is_error:
                response.read()
                raise error_for_response(response)
            yield response
        finally:
            response.close()

    def _request(self, method: str, path: str, expect_json: bool = True, **kwargs: Any) -> httpx.Response:
        if "params" in kwargs:
            kwargs["params"] = _given(kwargs["params"])
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise self.unreachable(error) from None
        if response.is_error:
            raise error_for_response(response)
        if expect_json and response.content and "json" not in response.headers.get("content-type", ""):
            raise BnlabError(not_bnlab(response))
        if "json" in response.headers.get("content-type", "") and response.content:
            try:
                response.json()
            except ValueError:
                raise BnlabError(f"{self.base_url}{path} answered with broken JSON.") from None
        return response

    def unreachable(self, error: httpx.TransportError) -> ConnectionFailed:
        """The one line for a request that got no answer."""
        if isinstance(error, httpx.ConnectError):
            return ConnectionFailed(
                f"Cannot connect to the bnlab service at {self.base_url} ({reason(error)}); "
                "start it with `make run`, or point --url / BNLAB_URL at it."
            )
        if isinstance(error, httpx.TimeoutException):
            return ConnectionFailed(f"The bnlab service at {self.base_url} did not answer in time.")
        return ConnectionFailed(
            f"Lost the connection to the bnlab service at {self.base_url} ({reason(error)})."
        )


def _given(params: QueryParams | None) -> dict[str, Any] | None:
    """Drops query parameters that were not given, so the service applies its own defaults."""
    if params is None:
        return None
    return {key: value for key, value in params.items() if value is not None}


def reason(error: httpx.TransportError) -> str:
    """Why a connection failed, in a few words."""
    text = str(error).strip()
    if "refused" in text.lower():
        return "connection refused"
    return text or type(error).__name__
