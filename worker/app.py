"""The worker's Celery app: `celery -A worker.app worker --pool=prefork --concurrency=1 -Q default,cpu`.

Prefork, not solo: only the prefork pool enforces time limits, and a training job that crashes its pool
child costs that child, not the worker.
"""

from __future__ import annotations

from celery.signals import worker_init, worker_process_init

from core.queue import make_celery
from core.settings import get_settings
from worker.gpu_slots import pin_to_a_gpu
from worker.memory import limit_address_space
from worker.registry import connect_registry
from worker.tasks import register_tasks

settings = get_settings()
app = make_celery(settings)
register_tasks(app, settings)
connect_registry(settings)


@worker_process_init.connect
def _limit_pool_process_memory(**_signal: object) -> None:
    # In each pool child, not in the parent: a job over the limit fails itself, never the worker.
    limit_address_space(settings.worker_memory_limit_mb)


@worker_init.connect
def _pin_to_a_gpu(**_signal: object) -> None:
    # In the main process, before the pool starts: its processes inherit CUDA_VISIBLE_DEVICES.
    pin_to_a_gpu(settings)
