"""Messages a broker lost are found within a sweep republisher round, not after `REQUEUE_AFTER` (an hour).

A private redis-server without persistence (like a Redis restarted without `appendonly`) is restarted by
the test, losing the message of a job already published; the re-publisher sees the broker's restart
(its uptime) and publishes that job again at its next round, and only that one. A queue that was emptied
while its jobs still wait (their messages taken and never run) is found once its jobs are past the grace.
A job's second delivery is dropped by its lease (`tests/reliability/test_duplicates.py`), so publishing
again never trains a job twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from celery import Celery

from api.republisher import Republisher
from core.queue import make_celery, publish_job
from core.settings import Settings
from core.spec import JobSpec
from core.store import Store
from tests.api.conftest import published_tasks
from tests.fixtures.worker import RedisServer, free_port
from tests.reliability.conftest import TINY_SPEC

pytestmark = pytest.mark.service


@dataclass
class Deployment:
    redis: RedisServer
    store: Store
    settings: Settings
    celery_app: Celery

    def submit(self) -> str:
        job = self.store.create_job(JobSpec.model_validate(TINY_SPEC))
        publish_job(self.celery_app, job.id, "cpu")
        self.store.mark_enqueued(job.id)
        return job.id

    def queued_messages(self) -> int:
        return int(redis.Redis.from_url(self.redis.url).llen("cpu"))

    def republisher(self, **options: float) -> Republisher:
        return Republisher(self.store, self.celery_app, self.settings, **options)


@pytest.fixture
def deployment(migrated_postgres_url: str, tmp_path: Path) -> Iterator[Deployment]:
    """PostgreSQL and a private Redis nobody consumes, with the service's REQUEUE_AFTER of an hour."""
    server = RedisServer(free_port(), tmp_path)
    server.start()
    settings = Settings(_env_file=None, database_url=migrated_postgres_url, broker_url=server.url)  # type: ignore[call-arg]
    assert settings.requeue_after_seconds == 3600
    store = Store(migrated_postgres_url)
    celery_app = make_celery(settings)
    time.sleep(2.5)  # a job published in Redis's first two seconds may count as published before it
    try:
        yield Deployment(server, store, settings, celery_app)
    finally:
        celery_app.close()
        store.dispose()
        server.stop()


def test_a_job_whose_message_a_redis_restart_lost_is_published_again_at_the_next_round(
    deployment: Deployment,
) -> None:
    republisher = deployment.republisher()
    lost = deployment.submit()
    assert deployment.queued_messages() == 1
    assert republisher.republish_once() == [], "nothing is lost yet"

    deployment.redis.stop()
    deployment.redis.start()  # no persistence: the message is gone
    assert deployment.queued_messages() == 0
    time.sleep(2.5)  # past the two seconds after a start whose jobs may be published again
    kept = deployment.submit()  # published after the restart: its message is there

    assert republisher.republish_once() == [lost], "the lost job; not the one published after the restart"
    assert sorted(job_id for _, job_id in published_tasks(deployment.redis.url)) == sorted([lost, kept])
    assert republisher.republish_once() == [], "published once, not at every round"


def test_jobs_still_queued_past_the_grace_in_an_empty_queue_are_published_again(
    deployment: Deployment,
) -> None:
    republisher = deployment.republisher(lost_message_grace_seconds=1.0)
    first, second = deployment.submit(), deployment.submit()
    time.sleep(1.5)
    assert republisher.republish_once() == [], "their messages are in the queue: nothing to publish"

    taken = published_tasks(deployment.redis.url)  # taken by a consumer that never ran them
    assert [job_id for _, job_id in taken] == [first, second]
    time.sleep(1.5)
    assert sorted(republisher.republish_once()) == sorted([first, second])
    assert deployment.queued_messages() == 2
