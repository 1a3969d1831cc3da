"""Route dependencies as typed aliases, so route signatures read like plain types.

The settings, the store, the Celery app, the live workers' queues (`api.jobs.waiting`) and the publication
marks (`api.publication_marks`) are built once per FastAPI app (`create_app`), kept on `app.state` and read
by `app_state`'s dependencies; `get_job_or_404` is the validation dependency every
`/v1/jobs/{job_id}` route reuses (each documents its 404 with `JOB_NOT_FOUND`); `PageLimit` and
`PageCursor` are the query parameters of every list route.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from celery import Celery
from fastapi import Depends, Path, Query, Request

from api.errors import error_answer, not_found
from api.jobs.waiting import LiveQueues
from api.publication_marks import PublicationMarks
from core.settings import Settings
from core.store import JobView, StoreInterface


def app_state(name: str) -> Callable[[Request], Coroutine[Any, Any, Any]]:
    """The dependency that reads `app.state.<name>`, built once per app by `create_app`. It is `async def`,
    so it runs on the event loop, where a sync dependency would wait for a thread of the request pool (and
    `/readyz` must never wait for one)."""

    async def read(request: Request) -> Any:
        return getattr(request.app.state, name)

    return read


SettingsDep = Annotated[Settings, Depends(app_state("settings"))]
StoreDep = Annotated[StoreInterface, Depends(app_state("store"))]
CeleryDep = Annotated[Celery, Depends(app_state("celery"))]
LiveQueuesDep = Annotated[LiveQueues, Depends(app_state("live_queues"))]
PublicationMarksDep = Annotated[PublicationMarks, Depends(app_state("publication_marks"))]

MAX_PAGE_SIZE = 200
PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
PageCursor = Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page")]


def normalize_job_id(raw: str) -> str | None:
    """A job id as the store keeps it (UUID hex), or None when `raw` is no UUID at all."""
    try:
        return uuid.UUID(raw).hex
    except ValueError:
        return None


JOB_NOT_FOUND = error_answer(404, "no job with this id")


def get_job_or_404(
    store: StoreDep,
    job_id: Annotated[str, Path(max_length=64, description="the job's id (UUID hex)")],
) -> JobView:
    # A malformed id is simply a job that does not exist: never hand it to the database (PostgreSQL's
    # uuid type would reject it with an error that is no business of the client).
    normalized = normalize_job_id(job_id)
    job = store.get_job(normalized) if normalized is not None else None
    if job is None:
        raise not_found(f"job {job_id}")
    return job


JobDep = Annotated[JobView, Depends(get_job_or_404)]
