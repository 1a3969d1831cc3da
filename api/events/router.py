"""`GET /v1/jobs/{id}/events`: a job's progress, metrics and status changes as Server-Sent Events.

The route is `async def`: an open stream costs the event loop nothing while it waits, and never a
database connection (the process's one `EventHub`, in `api.events.hub`, reads for every stream). Its 404
and 422 come from dependencies, before the stream starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.sse import EventSourceResponse, ServerSentEvent

from api.dependencies import JOB_NOT_FOUND, JobDep, SettingsDep
from api.errors import DATABASE_DOWN
from api.events.hub import LAST_EVENT_ID_PATTERN, EventHub, StreamPosition

router = APIRouter(prefix="/v1/jobs", tags=["events"])

EVENTS_DESCRIPTION = """\
Server-Sent Events, in this order: `status` (id `status:<seq>`: 1 queued, 2 running, then the final
status), `metrics` at each evaluation step (id `metrics:<step>`, data `{"step", "values": {name: value}}`),
and `progress` (`{"step", "steps", "steps_per_second"}`, the latest only, no id) whenever it changes.
The stream ends after the final status. Reconnect with `Last-Event-ID` to receive every `status` and
`metrics` event after that one, without gaps or repeats (an id no stream sends, a number beyond 2147483647,
is a 422). A comment is sent while nothing happens.
"""


async def get_event_hub(request: Request, settings: SettingsDep) -> EventHub:
    """The process's one hub, made on first use (an async dependency runs on the event loop, so two
    first streams cannot make two)."""
    hub: EventHub | None = getattr(request.app.state, "event_hub", None)
    if hub is None:
        hub = EventHub(request.app.state.store, settings.events_poll_seconds)
        request.app.state.event_hub = hub
    return hub


def stream_position(
    last_event_id: Annotated[
        str | None,
        Header(
            pattern=LAST_EVENT_ID_PATTERN,
            description="resume after this event: `metrics:<step>` or `status:<seq>`",
        ),
    ] = None,
) -> StreamPosition:
    """Where the stream resumes. An id beyond any a stream sends (a number past the 32-bit columns) is a
    422 naming the header: a browser only sends back ids it received, so such an id is a client's bug."""
    try:
        return StreamPosition.after(last_event_id)
    except ValueError as error:
        raise RequestValidationError(
            [
                {
                    "loc": ("header", "last-event-id"),
                    "msg": str(error),
                    "type": "value_error",
                    "input": last_event_id,
                }
            ]
        ) from error


EventHubDep = Annotated[EventHub, Depends(get_event_hub)]
PositionDep = Annotated[StreamPosition, Depends(stream_position)]


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    summary="Follow a job live: progress, metrics and status changes",
    description=EVENTS_DESCRIPTION,
    responses={**JOB_NOT_FOUND, **DATABASE_DOWN},
)
async def stream_job_events(
    job: JobDep, position: PositionDep, hub: EventHubDep, settings: SettingsDep
) -> AsyncIterable[ServerSentEvent]:
    subscription = hub.subscribe(job.id, position)
    try:
        while True:
            try:
                batch = await asyncio.wait_for(subscription.batches.get(), settings.events_keepalive_seconds)
            except TimeoutError:
                yield ServerSentEvent(comment="keep-alive")
                continue
            for event in batch.events:
                yield event
            if batch.finished:
                return
    finally:
        hub.unsubscribe(subscription)
