"""The Celery configuration: delivery guarantees, routing by device, and the SQLite broker's polling."""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import redis

from core.queue import make_celery, publish_job, time_limits
from core.settings import Settings
from tests.fixtures.worker import RedisServer


def test_tasks_are_acknowledged_late_one_at_a_time_within_time_limits() -> None:
    settings = Settings(broker_url="redis://127.0.0.1:6379/0", job_soft_time_limit_seconds=600)
    conf = make_celery(settings).conf
    soft, hard = time_limits(settings)

    assert (conf.task_acks_late, conf.task_reject_on_worker_lost, conf.worker_prefetch_multiplier) == (
        True,
        True,
        1,
    )
    assert soft is not None and 600 < soft < hard
    assert (conf.task_soft_time_limit, conf.task_time_limit) == (soft, hard)
    assert conf.broker_transport_options["visibility_timeout"] > hard  # never redelivered while running
    assert conf.task_ignore_result and not conf.result_backend
    assert sorted(queue.name for queue in conf.task_queues) == ["cpu", "default", "gpu"]


def test_without_a_soft_time_limit_the_hard_one_comes_its_grace_after_the_deadline() -> None:
    settings = Settings(
        job_soft_time_limit_seconds=10,
        celery_soft_time_limit_grace_seconds=0,
        celery_hard_time_limit_grace_seconds=5,
    )
    conf = make_celery(settings).conf

    assert (conf.task_soft_time_limit, conf.task_time_limit) == (None, 15)


def test_jobs_are_routed_to_the_queue_of_their_device(private_redis: RedisServer) -> None:
    url = private_redis.url.rsplit("/", 1)[0] + "/5"  # not the database the session's worker consumes
    client = redis.Redis.from_url(url)
    client.flushdb()  # a database of the test's own private server
    app = make_celery(Settings(broker_url=url))

    for job_id, device in [("a" * 32, "cpu"), ("b" * 32, "cuda:1"), ("c" * 32, "auto"), ("d" * 32, "cuda")]:
        publish_job(app, job_id, device)

    assert [client.llen(queue) for queue in ("cpu", "gpu", "default")] == [1, 2, 1]
    app.close()


def test_the_sqlite_broker_polls_at_the_configured_interval(tmp_path: Path) -> None:
    """kombu's default is one poll a second (~0.5 s median latency); 0.05 s must show in the latency."""
    settings = Settings(broker_url=f"sqla+sqlite:///{tmp_path / 'broker.db'}", broker_polling_seconds=0.05)
    app = make_celery(settings)
    latencies: list[float] = []
    with app.connection_for_read() as consumer_connection:
        assert consumer_connection.transport.polling_interval == 0.05
        inbox = consumer_connection.SimpleQueue("latency-probe")

        def send() -> None:
            with app.connection_for_write() as producer_connection:
                outbox = producer_connection.SimpleQueue("latency-probe")
                for _ in range(8):
                    time.sleep(0.13)  # not a multiple of the interval: sends land anywhere in a poll cycle
                    outbox.put({"sent": time.monotonic()})

        sender = threading.Thread(target=send)
        sender.start()
        for _ in range(8):
            message = inbox.get(timeout=5)
            latencies.append(time.monotonic() - message.payload["sent"])
            message.ack()
        sender.join()
    app.close()
    assert statistics.median(latencies) < 0.15 and max(latencies) < 0.5
