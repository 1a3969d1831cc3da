"""The worker's Celery app: `celery -A worker.app worker --pool=prefork --concurrency=1 -Q default,cpu`.

Prefork, not solo: only the prefork pool enforces time limits, and a training job that crashes its pool
child costs that child, not the worker.
"""

from __future__ import annotations

from core.queue import make_celery
from core.settings import get_settings
from worker.tasks import register_tasks

settings = get_settings()
app = make_celery(settings)
register_tasks(app, settings)
