"""What can go wrong talking to a bnlab service, as typed exceptions that carry the API's own message.

Every error is a `BnlabError` whose text is one line a person can act on; `status_code` is the HTTP
status (None when no answer came) and `detail` the API's `detail` as sent. Catch the subclass you can
handle: `NotFound` (404), `ValidationError` (422, with `errors`: each field and what is wrong with it),
`Conflict` (409), `Unavailable` (503: the database or broker is down), `ConnectionFailed` (no answer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx


class BnlabError(Exception):
    """A request that did not succeed, described in one line."""

    def __init__(self, message: str, status_code: int | None = None, detail: object = None) -> None:
        super().__init__(" ".join(message.split()))
        self.status_code = status_code
        self.detail = detail

    @property
    def message(self) -> str:
        return str(self.args[0])


class ConnectionFailed(BnlabError):
    """No answer: the service is not running there, the connection broke, or it did not answer in time."""


class Unauthorized(BnlabError):
    """401: no API key was sent, or it was rejected."""


class Forbidden(BnlabError):
    """403: the API key may not do this (a read-only key writing)."""


class NotFound(BnlabError):
    """404: no job, sweep or route of that id."""


class Conflict(BnlabError):
    """409: the request clashes with the resource's state (e.g. cancelling a finished job)."""


@dataclass(frozen=True)
class FieldError:
    """One invalid value of a 422: `field` as `learning_rate` or `query parameter limit`."""

    field: str
    message: str


class ValidationError(BnlabError):
    """422: the request was refused; `errors` names each field and what is wrong with it."""

    def __init__(self, message: str, status_code: int, detail: object, errors: list[FieldError]) -> None:
        super().__init__(message, status_code, detail)
        self.errors = errors


class ServerError(BnlabError):
    """5xx: the service failed."""


class Unavailable(ServerError):
    """503: the service is up but its database or broker is not."""


def field_errors(detail: object) -> list[FieldError]:
    """FastAPI's 422 `detail` list as fields and messages. The location's first element says where the
    value came from; `body` is left out (nearly everything comes from there), a query or path parameter
    is named as such."""
    if not isinstance(detail, list):
        return [FieldError("request", str(detail))]
    errors = []
    for error in detail:
        if not isinstance(error, Mapping):
            errors.append(FieldError("request", str(error)))
            continue
        location = [str(part) for part in error.get("loc", [])]
        if location and location[0] == "body":
            location = location[1:]
        if location and location[0] in {"query", "path", "header"}:
            field = f"{location[0]} parameter {'.'.join(location[1:])}"
        else:
            field = ".".join(location) or "request body"
        errors.append(FieldError(field, str(error.get("msg", "invalid"))))
    return errors


def describe_validation_errors(detail: object) -> str:
    """A 422's `detail` as one line: `learning_rate: Input should be greater than 0; ...`."""
    if not isinstance(detail, list):
        return str(detail)
    return "; ".join(
        f"{error.field}: {error.message}" if error.field != "request" else error.message
        for error in field_errors(detail)
    )


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


def error_for_response(response: httpx.Response) -> BnlabError:
    """The typed, one-line error for an answer that is not 2xx (the body must already be read)."""
    status = response.status_code
    detail = _detail_of(response)
    request = response.request
    if status == 401:
        has_key = "authorization" in request.headers
        hint = "the API key in BNLAB_API_KEY was rejected" if has_key else "set BNLAB_API_KEY to an API key"
        return Unauthorized(f"Not authorized (401): {hint}.", status, detail)
    if status == 403:
        return Forbidden(
            f"Forbidden (403): this API key may not {request.method} {request.url.path} ({detail}).",
            status,
            detail,
        )
    if status == 404:
        return NotFound(f"Not found (404): {detail}", status, detail)
    if status == 409:
        return Conflict(f"Conflict (409): {detail}", status, detail)
    if status == 422:
        return ValidationError(
            f"Invalid request (422): {describe_validation_errors(detail)}",
            status,
            detail,
            field_errors(detail),
        )
    if status >= 500:
        kind = Unavailable if status == 503 else ServerError
        return kind(
            f"The service failed ({status}) on {request.method} {request.url.path}: {detail}", status, detail
        )
    return BnlabError(f"Request refused ({status}): {detail}", status, detail)
