"""Fused training: `run_fused(specs, callbacks, checkpoint, settings, on_group_checkpoint, on_model_result,
on_sync_point) -> list[Result]`.

M jobs that `core.fused_groups.can_fuse` pairs (one architecture — MLP or CNN, torch's BN, bnlab's paper BN
or none —, one optimizer kind, one schedule)
train as ONE stack (`core.ml.trainer`, the trainer every job goes through): one batched kernel per layer, one
optimizer update for all of them. Each model stays the job it was: it starts from its own seeded
parameters, draws its own batches (the same as alone, `core.ml.sampling`), reports through its own
`Callbacks`, and on the CPU at one thread follows its separate run to the bit without dropout (with
dropout, in distribution: the stack's generator draws the masks). A model that diverges, is cancelled or
stops at its target ends at once — `on_model_result(index, result)` is called then, before the group
trains on — and the others go on.

Checkpoints are the group's: one blob every `checkpoint_every` steps through `on_group_checkpoint(step,
blob)`; `run_fused(specs, callbacks, checkpoint=blob)` continues from it, and a model that had ended before
the snapshot returns its stored result without reporting again. The per-model `Callbacks.on_checkpoint` is
not called: a model's state means nothing outside its group's blob. `on_sync_point(step)` is called once
per sync point, after every model's reports of it (the worker stores them together then).
"""

from __future__ import annotations

from collections.abc import Sequence

from core.fused_groups import can_fuse, fusion_key
from core.ml.trainer import GroupCheckpointHook, ModelResultHook, train_stack
from core.results import Callbacks, Result, SyncPointHook
from core.settings import Settings
from core.spec import JobSpec

__all__ = ["can_fuse", "fusion_key", "run_fused"]


def run_fused(
    specs: Sequence[JobSpec],
    callbacks: Sequence[Callbacks],
    checkpoint: bytes | None = None,
    settings: Settings | None = None,
    on_group_checkpoint: GroupCheckpointHook | None = None,
    on_model_result: ModelResultHook | None = None,
    on_sync_point: SyncPointHook | None = None,
) -> list[Result]:
    """Train `specs` as one fused group; one result per spec, in order. Resume from a group `checkpoint`.

    Raises ValueError when the specs cannot be fused (see `core.fused_groups.fusion_key`), when `callbacks`
    does not hold one entry per spec, for a device this machine does not have, and for a checkpoint of another
    group (other specs or another order).
    """
    if not specs or len(callbacks) != len(specs):
        raise ValueError("run_fused needs at least one spec and exactly one Callbacks per spec")
    if not all(can_fuse(specs[0], spec) for spec in specs):
        raise ValueError(
            "these specs cannot be trained as one fused group (see core.fused_groups.fusion_key)"
        )
    return train_stack(
        specs, callbacks, checkpoint, settings, on_group_checkpoint, on_model_result, on_sync_point
    )
