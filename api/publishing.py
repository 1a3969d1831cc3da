"""Handing stored jobs to the broker on the submit path: publish, then mark them enqueued.

A job is committed before it is published, so a broker that refuses costs nothing but time: the jobs stay
`queued` with `enqueued_at` null, the route answers as if all went well, and the republisher
(`api.republisher`) publishes them once the broker answers again.
"""

from __future__ import annotations

import logging

from celery import Celery

from api.publication_marks import PublicationMarks
from core.queue import publish_group, publish_job
from core.store import StoreInterface

logger = logging.getLogger(__name__)


def publish_stored(
    store: StoreInterface,
    celery_app: Celery,
    job_ids: list[str],
    device: str,
    fused_group_id: str | None = None,
    marks: PublicationMarks | None = None,
) -> None:
    """Publish one training task and mark its jobs enqueued: the task of the one job in `job_ids`, or, with
    `fused_group_id`, the task that trains the group's `job_ids` together. With `marks` the mark is left to
    its thread (`api.publication_marks`). Never raises for the broker."""
    if fused_group_id is None and len(job_ids) != 1:
        raise ValueError(f"a job's own task trains one job, not {len(job_ids)}")
    what = f"job {job_ids[0]}" if fused_group_id is None else f"fused group {fused_group_id}"
    try:
        if fused_group_id is None:
            publish_job(celery_app, job_ids[0], device)
        else:
            publish_group(celery_app, job_ids, device)
        if marks is None:
            store.mark_enqueued(*job_ids)
        else:
            marks.add(job_ids)
    except Exception as error:  # whatever the transport raised, the republisher retries
        logger.warning("%s stored but not yet published (the republisher retries): %s", what, error)


def publish_each(store: StoreInterface, celery_app: Celery, jobs: list[tuple[str, str]]) -> None:
    """Publish the own task of each of `jobs` (job id, device), then mark the published ones enqueued in one
    statement. The first task the broker refuses leaves it and the rest queued for the republisher (a
    broker that is down is not asked again for each job). Never raises for the broker."""
    published: list[str] = []
    try:
        for job_id, device in jobs:
            publish_job(celery_app, job_id, device)
            published.append(job_id)
    except Exception as error:  # whatever the transport raised, the republisher retries
        left = len(jobs) - len(published)
        logger.warning("%d jobs stored but not yet published (the republisher retries): %s", left, error)
    if not published:
        return
    try:
        store.mark_enqueued(*published)
    except Exception as error:  # unmarked, they look unpublished: the republisher publishes them again
        count = len(published)
        logger.warning("%d published jobs not marked enqueued (the republisher retries): %s", count, error)
