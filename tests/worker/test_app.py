"""The worker's processes: the parent loads the Celery app without torch (CUDA is touched only in the pool
children), and each pool child loads the training core as it starts, before it takes a job."""

from __future__ import annotations

import subprocess
import sys

from tests.fixtures.worker import PROJECT_ROOT


def run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def test_loading_the_worker_app_does_not_import_torch() -> None:
    probe = (
        "import sys; from worker.app import app; from core.queue import TRAIN_GROUP_TASK, TRAIN_TASK; "
        "assert {TRAIN_TASK, TRAIN_GROUP_TASK} <= set(app.tasks); print('torch' in sys.modules)"
    )
    assert run_python(probe) == "False"


def test_a_pool_process_loads_the_training_core_as_it_starts() -> None:
    # What Celery's prefork pool does in each new child before it hands the child a task.
    probe = (
        "import sys; from celery.signals import worker_process_init; from worker.app import app; "
        "worker_process_init.send(sender=None); "
        "print(sorted(set(sys.modules) & {'torch', 'core.ml', 'core.ml.fused', 'sklearn'}))"
    )
    assert run_python(probe) == "['core.ml', 'core.ml.fused', 'sklearn', 'torch']"
