"""Training one job: `run(spec, callbacks, checkpoint, settings) -> Result`, a stack of one.

Every job trains through the one trainer, `core.ml.trainer` (see there for the schedule, sync points and
determinism); this is its entry point for a job alone. The job's checkpoints are its stack's blobs, handed
to `callbacks.on_checkpoint`, and `run(spec, checkpoint=blob)` continues from one.
"""

from __future__ import annotations

from core.ml.device_info import resolve_device
from core.ml.stacks import build_optimizer
from core.ml.trainer import train_stack
from core.results import Callbacks, Result
from core.settings import Settings
from core.spec import JobSpec

__all__ = ["build_optimizer", "resolve_device", "run"]


def run(
    spec: JobSpec,
    callbacks: Callbacks | None = None,
    checkpoint: bytes | None = None,
    settings: Settings | None = None,
) -> Result:
    """Train `spec` to the end, to a stop request, to its target (`stop_at_target`) or to divergence;
    resume from `checkpoint` when given.

    Raises ValueError for a device this machine does not have or a checkpoint of another spec.
    """
    callbacks = callbacks if callbacks is not None else Callbacks()
    (result,) = train_stack(
        [spec], [callbacks], checkpoint, settings, on_group_checkpoint=callbacks.on_checkpoint
    )
    return result
