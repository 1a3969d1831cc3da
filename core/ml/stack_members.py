"""The jobs of a stack as the trainer keeps them (`core.ml.trainer`): each one's spec, callbacks, running
summary and place in the data, how it ended, and the result it ends with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.ml.checkpoints import RunningSummary
from core.results import Callbacks, Result, RunOutcome
from core.spec import JobSpec


@dataclass(eq=False)  # members are compared and hashed by identity
class StackMember:
    """One job of the stack: its spec, callbacks and running summary, and how it ended (None: training)."""

    index: int
    spec: JobSpec
    callbacks: Callbacks
    dataset_slot: int
    summary: RunningSummary = field(default_factory=RunningSummary)
    result: Result | None = None

    def final_result(
        self, outcome: RunOutcome, steps_completed: int, steps_per_second: float | None, device: str
    ) -> Result:
        """The job's result, ended with `outcome` after `steps_completed` steps at the stack's speed."""
        return Result(
            outcome=outcome,
            steps_completed=steps_completed,
            summary=self.summary.final(steps_completed if outcome == "diverged" else None, steps_per_second),
            device=device,
        )
