"""The Celery configuration shared by the API (which publishes) and the worker (which consumes).

Torch-free and worker-free: the API publishes by task *name* (`publish_job`, `publish_group` for the jobs of
a fused group, which one task trains together) and never imports `worker/`.
Brokers: Redis when deployed; kombu's SQLAlchemy transport on an SQLite file when embedded (`sqla+sqlite:///…`).
Reliability does not rest on the broker: a job's liveness is its lease in the job table (see the store), so
no result backend is needed and a message the broker loses is published again by the API's republisher.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Queue

from core import broker_transport
from core.settings import Settings, get_settings
from core.spec import queue_for_device

TRAIN_TASK = "bnlab.train_job"
TRAIN_GROUP_TASK = "bnlab.train_group"
QUEUES = ("default", "cpu", "gpu")
SQLALCHEMY_PREFIX = "sqla+"

# The worker stops a job at its deadline (settings.job_soft_time_limit_seconds) through `should_stop`;
# Celery's soft limit (an exception inside the task) and hard limit (the pool child is killed, and the
# worker fails the jobs it held) are backstops for a job stuck inside one step, settings.celery_*_grace
# seconds later (60 s each by default).
# Redis hands an unacknowledged message to another worker after `visibility_timeout`; it must exceed the
# longest job, or a long job would be delivered twice while it runs (the lease would drop the copy, but
# it would cost a delivery). An hour above the hard limit.
VISIBILITY_MARGIN_SECONDS = 3600
# Publishing must not hang a request when the broker is down: a short connect timeout and two quick
# retries, then the API leaves the job queued for the republisher.
PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0.0, "interval_step": 0.25, "interval_max": 0.5}
BROKER_CONNECT_TIMEOUT_SECONDS = 2.0


def time_limits(settings: Settings) -> tuple[int | None, int]:
    """(soft, hard) Celery time limits in seconds for a training task (soft None: no soft limit)."""
    deadline = settings.job_soft_time_limit_seconds
    soft_grace = settings.celery_soft_time_limit_grace_seconds
    soft = deadline + soft_grace if soft_grace else None
    return soft, (soft or deadline) + settings.celery_hard_time_limit_grace_seconds


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    """Per broker: the SQLite broker's polling interval; Redis' visibility timeout and connect timeout."""
    url = settings.broker_url
    if url.startswith(SQLALCHEMY_PREFIX):
        return {"polling_interval": settings.broker_polling_seconds}
    if url.startswith(("redis://", "rediss://")):
        _, hard_limit = time_limits(settings)
        return {
            "visibility_timeout": hard_limit + VISIBILITY_MARGIN_SECONDS,
            "socket_connect_timeout": BROKER_CONNECT_TIMEOUT_SECONDS,
        }
    return {}


def make_celery(settings: Settings | None = None) -> Celery:
    """A Celery app configured from `settings` (the process-wide settings by default)."""
    settings = settings if settings is not None else get_settings()
    broker_transport.install()
    soft_limit, hard_limit = time_limits(settings)
    app = Celery("bnlab", set_as_current=False)
    app.conf.update(
        broker_url=settings.broker_url,
        broker_transport_options=broker_transport_options(settings),
        broker_connection_timeout=BROKER_CONNECT_TIMEOUT_SECONDS,
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        # A job is acknowledged after it ran, and given back if its pool child dies; one at a time.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=soft_limit,
        task_time_limit=hard_limit,
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="default",
        task_publish_retry_policy=PUBLISH_RETRY_POLICY,
    )
    return app


def publish_job(app: Celery, job_id: str, device: str) -> None:
    """Send the training task for `job_id` to the queue its device routes to (raises when the broker is
    unreachable; the job stays queued and the republisher publishes it later)."""
    app.send_task(TRAIN_TASK, args=[job_id], queue=queue_for_device(device))


def publish_group(app: Celery, job_ids: list[str], device: str) -> None:
    """Send the task that trains the jobs of one fused group together (ids only, in training order) to the
    queue their device routes to; raises like `publish_job`."""
    app.send_task(TRAIN_GROUP_TASK, args=[job_ids], queue=queue_for_device(device))
