"""What every delivery shares, of one job or of a fused group: the lease owner it trains as, its deadline,
how a run's end becomes a job's status, and what one delivery came to (`Delivery`).

The deadline (`settings.job_soft_time_limit_seconds`) counts from the start of training — the moment the
job is handed to the training core, which each pool process has loaded at its start
(`worker.training_core`) — not from the lease: waiting for a pool process, or loading torch into it, is
no part of a job's time.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass

from core.results import Result
from core.store import LeaseOutcome

logger = logging.getLogger(__name__)

TIME_LIMIT_EXCEEDED = "time limit exceeded"
# A job that ends in one of these is logged as a warning: the user has a run to look into.
STATUSES_WORTH_A_WARNING = frozenset({"failed", "diverged"})


@dataclass(frozen=True)
class Delivery:
    """What became of one delivery of a job: the lease outcome and the status written (None: nothing
    written)."""

    job_id: str
    lease: LeaseOutcome
    status: str | None = None

    def __str__(self) -> str:
        if self.status is None:
            return f"job {self.job_id}: no status written (lease {self.lease})"
        return f"job {self.job_id}: {self.status}"


def log_final_status(job_id: str, status: str, error: str | None) -> None:
    """Say in the worker's log how the job ended. Celery logs a task that returns as "succeeded" whatever
    became of its job (a failed or diverged job is a result, not a task error, and is never retried)."""
    level = logging.WARNING if status in STATUSES_WORTH_A_WARNING else logging.INFO
    logger.log(level, "job %s: %s%s", job_id, status, f" ({error})" if error else "")


def owner_prefix(pid: int) -> str:
    """How the lease owners of every delivery by process `pid` on this host begin."""
    return f"{socket.gethostname()}:{pid}:"


def new_owner() -> str:
    """A lease owner unique to this delivery (host, process, random suffix)."""
    return f"{owner_prefix(os.getpid())}{uuid.uuid4().hex[:8]}"


class Deadline:
    """A run's deadline, `seconds` after `start()`; never passed before it started."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._at: float | None = None

    def start(self) -> None:
        self._at = time.monotonic() + self.seconds

    def passed(self) -> bool:
        return self._at is not None and time.monotonic() >= self._at


def final_status(result: Result, cancel_requested: bool) -> tuple[str, str | None]:
    """The status and error a job ends with after its run ended with `result`: the run's outcome, but a
    run stopped without a user asking (by its deadline) failed "time limit exceeded"."""
    if result.outcome == "cancelled" and not cancel_requested:
        return "failed", TIME_LIMIT_EXCEEDED
    return result.outcome, None


def error_message(failure: BaseException) -> str:
    """The error a job that raised `failure` is failed with: the exception's type and message."""
    return f"{type(failure).__name__}: {failure}" if str(failure) else type(failure).__name__
