"""The worker's Celery app: `celery -A worker.app worker --pool=prefork --concurrency=1 -Q default,cpu`.

Prefork, not solo: only the prefork pool enforces time limits, and a training job that crashes its pool
child costs that child, not the worker. Each pool child, as it starts, caps its memory, lowers its CPU
priority below the API's (`worker.priority`) and loads (and warms up) the training core before it takes a
job.
"""

from __future__ import annotations

from celery.signals import worker_init, worker_process_init

from core.queue import make_celery
from core.settings import get_settings
from worker.gpu_slots import pin_to_a_gpu
from worker.memory import limit_address_space
from worker.priority import lower_priority
from worker.registry import connect_registry
from worker.tasks import register_tasks
from worker.training_core import warm_up_training_core

# How long a new pool child may take to start (Celery's default is 4 s): it loads the training core
# first, which takes seconds, and far more on a loaded machine; one slower than this is killed and replaced.
POOL_PROCESS_START_SECONDS = 300.0

settings = get_settings()
app = make_celery(settings)
app.conf.worker_proc_alive_timeout = POOL_PROCESS_START_SECONDS
register_tasks(app, settings)
connect_registry(settings)


@worker_process_init.connect
def _prepare_pool_process(**_signal: object) -> None:
    # In each pool child, not in the parent: a job over the limit fails itself, never the worker; and
    # the parent never loads torch. The core is loaded within the memory limit, as a job would load it.
    limit_address_space(settings.worker_memory_limit_mb)
    lower_priority(settings.worker_niceness)  # before torch starts its threads: they inherit it
    warm_up_training_core(settings)


@worker_init.connect
def _pin_to_a_gpu(**_signal: object) -> None:
    # In the main process, before the pool starts: its processes inherit CUDA_VISIBLE_DEVICES.
    pin_to_a_gpu(settings)
