"""The CLI's connection to the service: the `bnlab` package's transport (URL, API key, every failure as a
typed `bnlab.errors.BnlabError` with one clear line) plus a job's Server-Sent Events. `job_events` reads
a job's stream and, when the connection drops, reconnects with `Last-Event-ID` so that no metric or status
event is lost or repeated.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from bnlab.client import TERMINAL_STATUSES
from bnlab.errors import BnlabError as ServiceError
from bnlab.errors import error_for_response
from bnlab.transport import DEFAULT_URL, REQUEST_TIMEOUT_SECONDS, Transport, reason
from httpx_sse import SSEError, connect_sse

__all__ = ["DEFAULT_URL", "TERMINAL_STATUSES", "BnlabClient", "JobEvent", "ServiceError"]

# The service sends a keep-alive comment every 15 s while a job is quiet; three missed ones mean the
# connection is dead even if the socket has not noticed yet.
STREAM_READ_TIMEOUT_SECONDS = 45.0
MAX_RECONNECTS = 10
MAX_RECONNECT_DELAY_SECONDS = 5.0


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


class BnlabClient(Transport):
    """Talks to one bnlab service: JSON requests, and a job's event stream. Use as a context manager."""

    def __enter__(self) -> BnlabClient:
        return self

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
                    raise self.unreachable(error) from None
                if failures >= MAX_RECONNECTS:
                    raise ServiceError(
                        f"Lost the event stream of job {job_id} and could not resume it "
                        f"after {MAX_RECONNECTS} tries ({reason(error)})."
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
