"""The training core as the worker calls it, imported in the pool process that runs a task, never in the
worker's parent process (which never imports torch or touches CUDA: a CUDA context does not survive a fork).
"""

from __future__ import annotations

from collections.abc import Callable

from core.results import Callbacks, GroupCheckpointHook, ModelResultHook, Result
from core.settings import Settings
from core.spec import JobSpec

TrainFunction = Callable[[JobSpec, Callbacks, bytes | None, Settings], Result]
TrainGroupFunction = Callable[
    [list[JobSpec], list[Callbacks], bytes | None, Settings, GroupCheckpointHook, ModelResultHook],
    list[Result],
]


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
) -> list[Result]:
    from core.ml.fused import run_fused  # as in `train_with_core`

    return run_fused(specs, callbacks, checkpoint, settings, on_group_checkpoint, on_model_result)
