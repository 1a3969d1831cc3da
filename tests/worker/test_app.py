"""The worker's parent process: it loads the Celery app without torch (CUDA is touched only in the pool
children, inside a task)."""

from __future__ import annotations

import subprocess
import sys

from tests.fixtures.worker import PROJECT_ROOT


def test_loading_the_worker_app_does_not_import_torch() -> None:
    probe = (
        "import sys; from worker.app import app; from core.queue import TRAIN_GROUP_TASK, TRAIN_TASK; "
        "assert {TRAIN_TASK, TRAIN_GROUP_TASK} <= set(app.tasks); print('torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
