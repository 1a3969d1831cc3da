"""How a sweep's jobs are executed: which of them one task trains together as a fused group (stacked
models), and that said in words. Torch-free.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from core.fused_groups import split_into_fused_groups
from core.spec import JobSpec

ExecutionUsed = Literal["fused", "separate", "mixed"]  # mixed: fused groups and jobs on their own


def fused_groups(
    specs: Sequence[JobSpec],
    execution: str,
    max_group_size: int,
    max_gpu_group_size: int | None = None,
    limit_for: Callable[[JobSpec], int] | None = None,
) -> list[list[int]]:
    """The sweep's jobs that one task each trains together, as indices into `specs`, one list per group of
    two or more (grouped by `core.fused_groups.split_into_fused_groups`: a BN-on and a BN-off group are two
    groups, a group above `max_group_size` — `max_gpu_group_size` for GPU specs, or `limit_for`'s answer —
    is split evenly). None for a `separate` sweep; every job in no group runs as a task of its own."""
    if execution != "fused":
        return []
    groups = split_into_fused_groups(specs, max_group_size, max_gpu_group_size, limit_for)
    return [group for group in groups if len(group) > 1]


def how_executed(requested: str, group_sizes: Sequence[int], size: int) -> tuple[ExecutionUsed, str]:
    """(how the sweep's `size` jobs run, a note saying so), given the sizes of its fused groups."""
    fused = sum(group_sizes)
    alone = size - fused
    if requested != "fused":
        return "separate", "separate requested: each job runs as its own task"
    if not group_sizes:
        return (
            "separate",
            "fused requested, but no two jobs can train together (fused training covers MLPs with torch's "
            "batch norm or none, sharing architecture, optimizer kind, batch size "
            "and schedule), so each job runs as its own task",
        )
    groups = f"{len(group_sizes)} fused group{'s' if len(group_sizes) > 1 else ''}"
    note = (
        f"{fused} jobs in {groups} of {', '.join(map(str, group_sizes))}: one task trains each group's jobs "
        "together as stacked models"
    )
    if alone == 0:
        return "fused", note
    if alone == 1:
        return "mixed", f"{note}; 1 job fuses with no other and runs as its own task"
    return "mixed", f"{note}; {alone} jobs fuse with no other and run as one task each"
