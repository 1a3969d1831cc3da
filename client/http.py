"""A small httpx wrapper for the bnlab service: base URL, API key, and one clear line for every failure.

Everything the service can answer with — a refused connection, 401, 403, 404, 409, 422 (with the fields
and what is wrong with them), a server error — becomes a `ServiceError` whose message is a single line a
person can act on; the CLI prints it instead of a traceback. `job_events` reads a job's Server-Sent
Events and, when the connection drops, reconnects with `Last-Event-ID` so that no metric or status event
is lost or repeated.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx
from httpx_sse import SSEError, connect_sse

DEFAULT_URL = "http://127.0.0.1:8000"
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "diverged", "cancelled"})
REQUEST_TIMEOUT_SECONDS = 30.0
# The service sends a keep-alive comment every 15 s while a job is quiet; three missed ones mean the
# connection is dead even if the socket has not noticed yet.
STREAM_READ_TIMEOUT_SECONDS = 45.0
MAX_RECONNECTS = 10
MAX_RECONNECT_DELAY_SECONDS = 5.0

QueryParams = Mapping[str, str | int | float | bool | Sequence[str] | None]


class ServiceError(Exception):
    """A request that did not succeed, described in one line. `status_code` is None when no answer came."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(" ".join(message.split()))
        self.status_code = status_code

    @property
    def message(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class JobEvent:
    """One event of a job's stream: `kind` is progress, metrics or status; `data` its JSON payload.

    `last_event_id` is the id the stream would resume after (SSE carries the last id forward, so a
    progress event, which has no id of its own, reports the id of the metric or status event before it).
    """

    kind: str
    data: dict[str, Any]
    last_event_id: str | None

    @property
    def is_terminal(self) -> bool:
        return self.kind == "status" and self.data.get("status") in TERMINAL_STATUSES


def describe_validation_errors(detail: object) -> str:
    """FastAPI's 422 `detail` list as one line: `learning_rate: Input should be greater than 0; ...`.

    The location's first element says where the value came from; `body` is left out (it is where
    nearly everything comes from), a query or path parameter is named as such.
    """
    if not isinstance(detail, list):
        return str(detail)
    problems = []
    for error in detail:
        if not isinstance(error, Mapping):
            problems.append(str(error))
            continue
        location = [str(part) for part in error.get("loc", [])]
        message = str(error.get("msg", "invalid"))
        if location and location[0] == "body":
            location = location[1:]
        if location and location[0] in {"query", "path", "header"}:
            field = f"{location[0]} parameter {'.'.join(location[1:])}"
        else:
            field = ".".join(location) or "request body"
        problems.append(f"{field}: {message}")
    return "; ".join(problems)


MAX_DETAIL_CHARACTERS = 200


def not_bnlab(response: httpx.Response) -> str:
    """What to say of an answer that is not JSON: likely another server on that address."""
    content_type = response.headers.get("content-type", "").split(";")[0].strip() or "no content type"
    origin = f"{response.request.url.scheme}://{response.request.url.netloc.decode()}"
    return f"{origin} answered with {content_type}, not bnlab's JSON: is it a bnlab service?"


def _detail_of(response: httpx.Response) -> object:
    """The `detail` of an error answer; for an answer that is not JSON, its text when it is one short line
    (a proxy's "Bad Gateway"), else a sentence saying it does not look like bnlab (never a whole page)."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        if "html" in response.headers.get("content-type", "") or text.startswith("<"):
            return not_bnlab(response)
        if "\n" in text or len(text) > MAX_DETAIL_CHARACTERS:
            return f"{text.splitlines()[0][:MAX_DETAIL_CHARACTERS]}… ({not_bnlab(response)})"
        return text or response.reason_phrase
    if isinstance(body, Mapping) and "detail" in body:
        return body["detail"]
    return body


def error_for_response(response: httpx.Response) -> ServiceError:
    """The one-line error for an answer that is not 2xx (the body must already be read)."""
    status = response.status_code
    detail = _detail_of(response)
    request = response.request
    if status == 401:
        has_key = "authorization" in request.headers
        hint = "the API key in BNLAB_API_KEY was rejected" if has_key else "set BNLAB_API_KEY to an API key"
        return ServiceError(f"Not authorized (401): {hint}.", status)
    if status == 403:
        return ServiceError(
            f"Forbidden (403): this API key may not {request.method} {request.url.path} ({detail}).", status
        )
    if status == 404:
        return ServiceError(f"Not found (404): {detail}", status)
    if status == 409:
        return ServiceError(f"Conflict (409): {detail}", status)
    if status == 422:
        return ServiceError(f"Invalid request (422): {describe_validation_errors(detail)}", status)
    if status >= 500:
        return ServiceError(f"The service failed ({status}) on {request.method} {request.url.path}: {detail}")
    return ServiceError(f"Request refused ({status}): {detail}", status)


class BnlabClient:
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

    def __enter__(self) -> BnlabClient:
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

    def get_bytes(self, path: str, params: QueryParams | None = None) -> bytes:
        """GET a binary answer (a PNG or SVG plot)."""
        return self._request("GET", path, expect_json=False, params=params).content

    def _request(self, method: str, path: str, expect_json: bool = True, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **_without_none(kwargs))
        except httpx.TransportError as error:
            raise self._unreachable(error) from None
        if response.is_error:
            raise error_for_response(response)
        if expect_json and response.content and "json" not in response.headers.get("content-type", ""):
            raise ServiceError(not_bnlab(response))
        if "json" in response.headers.get("content-type", "") and response.content:
            try:
                response.json()
            except ValueError:
                raise ServiceError(f"{self.base_url}{path} answered with broken JSON.") from None
        return response

    def _unreachable(self, error: httpx.TransportError) -> ServiceError:
        if isinstance(error, httpx.ConnectError):
            return ServiceError(
                f"Cannot connect to the bnlab service at {self.base_url} ({_reason(error)}); "
                "start it with `make run`, or point --url / BNLAB_URL at it."
            )
        if isinstance(error, httpx.TimeoutException):
            return ServiceError(f"The bnlab service at {self.base_url} did not answer in time.")
        return ServiceError(
            f"Lost the connection to the bnlab service at {self.base_url} ({_reason(error)})."
        )

    def job_events(self, job_id: str, last_event_id: str | None = None) -> Iterator[JobEvent]:
        """The job's events until its terminal status, reconnecting with Last-Event-ID when dropped.

        A connection that cannot be made at all raises at once; a stream that breaks (or ends before the
        terminal status, e.g. an API restart) is resumed, up to MAX_RECONNECTS times in a row.
        """
        connected_before = False
        failures = 0
        while True:
            try:
                for event in self._read_stream(job_id, last_event_id):
                    connected_before = True
                    failures = 0
                    if event.last_event_id:
                        last_event_id = event.last_event_id
                    yield event
                    if event.is_terminal:
                        return
            except httpx.TransportError as error:
                if not connected_before:
                    raise self._unreachable(error) from None
                if failures >= MAX_RECONNECTS:
                    raise ServiceError(
                        f"Lost the event stream of job {job_id} and could not resume it "
                        f"after {MAX_RECONNECTS} tries ({_reason(error)})."
                    ) from None
            failures += 1
            time.sleep(min(0.25 * 2**failures, MAX_RECONNECT_DELAY_SECONDS))

    def _read_stream(self, job_id: str, last_event_id: str | None) -> Iterator[JobEvent]:
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        timeout = httpx.Timeout(REQUEST_TIMEOUT_SECONDS, read=STREAM_READ_TIMEOUT_SECONDS)
        path = f"/v1/jobs/{job_id}/events"
        with connect_sse(self._http, "GET", path, headers=headers, timeout=timeout) as source:
            if source.response.is_error:
                source.response.read()
                raise error_for_response(source.response)
            try:
                for message in source.iter_sse():
                    # A keep-alive comment after an event with an id decodes as an empty message.
                    if not message.data:
                        continue
                    try:
                        data = message.json()
                    except json.JSONDecodeError:
                        raise ServiceError(
                            f"Job {job_id}'s event stream sent something that is not JSON."
                        ) from None
                    yield JobEvent(kind=message.event, data=data, last_event_id=message.id or None)
            except SSEError:
                raise ServiceError(f"{self.base_url}{path} is not an event stream.") from None


def _without_none(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Drops query parameters that were not given, so the service applies its own defaults."""
    params = kwargs.get("params")
    if params is not None:
        kwargs["params"] = {key: value for key, value in params.items() if value is not None}
    return kwargs


def _reason(error: httpx.TransportError) -> str:
    text = str(error).strip()
    if "refused" in text.lower():
        return "connection refused"
    return text or type(error).__name__
