"""The training core as the worker calls it: loaded and warmed up in each pool process as it starts, never
in the worker's parent process.

The parent never imports torch or touches CUDA (a CUDA context does not survive a fork). Each pool process
trains a one-step job on the CPU as it starts (`warm_up_training_core`, from the `worker_process_init`
signal), before it takes a job: importing torch, and what torch and scikit-learn import on first use,
takes seconds (far more on a loaded machine) that would otherwise fall on its first job's deadline and on
Celery's time limits.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from typing import Any

from core.results import Callbacks, GroupCheckpointHook, ModelResultHook, Result, SyncPointHook
from core.settings import Settings
from core.spec import JobSpec

logger = logging.getLogger(__name__)

# The smallest job there is, on the default dataset. Its run imports what a job's does on first use: the
# first optimizer built imports torch._dynamo (and sympy), the digits scikit-learn.
WARM_UP_SPEC: dict[str, Any] = {
    "architecture": {"kind": "mlp", "hidden": [2], "activation": "relu"},
    "batch_norm": False,
    "learning_rate": 0.1,
    "dropout": 0.0,
    "name": "pool process warm-up",
    "batch_size": 2,
    "steps": 1,
    "eval_every": 1,
    "checkpoint_every": 0,
    "device": "cpu",
}

TrainFunction = Callable[[JobSpec, Callbacks, bytes | None, Settings], Result]
TrainGroupFunction = Callable[
    [
        list[JobSpec],
        list[Callbacks],
        bytes | None,
        Settings,
        GroupCheckpointHook,
        ModelResultHook,
        SyncPointHook,
    ],
    list[Result],
]


def warm_up_training_core(settings: Settings) -> None:
    """Import the training core into this (pool) process and train `WARM_UP_SPEC` with it."""
    started = time.monotonic()
    importlib.import_module("core.ml.fused")
    try:
        train_with_core(JobSpec.model_validate(WARM_UP_SPEC), Callbacks(), None, settings)
    except Exception:
        # Not fatal: a pool process that cannot start is replaced, again and again. Its jobs say what fails.
        logger.exception("warming up the training core failed")
    logger.info("training core loaded and warmed up in %.1f s", time.monotonic() - started)


def train_with_core(
    spec: JobSpec, callbacks: Callbacks, checkpoint: bytes | None, settings: Settings
) -> Result:
    from core.ml import run  # here, not at the top: the worker's parent process imports this module

    return run(spec, callbacks, checkpoint=checkpoint, settings=settings)


def train_group_with_core(
    specs: list[JobSpec],
    callbacks: list[Callbacks],
    checkpoint: bytes | None,
    settings: Settings,
    on_group_checkpoint: GroupCheckpointHook,
    on_model_result: ModelResultHook,
    on_sync_point: SyncPointHook,
) -> list[Result]:
    from core.ml.fused import run_fused  # as in `train_with_core`

    return run_fused(
        specs, callbacks, checkpoint, settings, on_group_checkpoint, on_model_result, on_sync_point
    )
