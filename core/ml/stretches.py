"""How long the trainer's stretches are (`core.ml.trainer`): the steps between two sync points, the only
places where the host waits for the device. A stretch ends at the next step with something due (an
evaluation, telemetry, a landscape probe, a checkpoint, the last step) or after about SYNC_SECONDS of
training, whichever comes first; the speed of the last stretch says how many steps that is. At its end one
read says which rows' losses turned non-finite, and where.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

SYNC_SECONDS = 0.25  # training time between sync points: bounds the answer to a stop request
FIRST_STRETCH_STEPS = 8  # before the speed is known
MAX_STRETCH_STEPS = 1024  # steps between sync points at most, however fast they are


def steps_to_next_event(step: int, steps: int, intervals: Sequence[int]) -> int:
    """Steps until the next step that is evaluated, probed, checkpointed, or the last one (`steps`), from
    `step` and the intervals of those events (0: never)."""
    following = [step + interval - step % interval for interval in intervals if interval > 0]
    return min([steps, *following]) - step


def next_stretch_steps(steps: int, seconds: float) -> int:
    """As many steps as the last stretch's speed fits into SYNC_SECONDS (at most double the last)."""
    fitting = int(steps * SYNC_SECONDS / seconds) if seconds > 0 else 2 * steps
    return max(1, min(fitting, 2 * steps, MAX_STRETCH_STEPS))


def first_non_finite(losses: Tensor) -> tuple[list[int], list[int]]:
    """Per row of a stretch's losses [steps, rows]: whether any is non-finite (1, else 0), and the offset of
    the first that is."""
    non_finite = ~torch.isfinite(losses)
    # One read from the device for the whole stack.
    diverged, first = torch.stack([non_finite.any(dim=0).long(), non_finite.long().argmax(dim=0)]).tolist()
    return diverged, first
