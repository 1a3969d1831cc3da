"""One delivery of a training job, from lease to final status — a plain function, tested without Celery.

    lease → heartbeat thread → progress at step 0 → latest checkpoint → core.ml.run(spec, callbacks)
          → final status + summary

`should_stop` turns true on a cancel request, a lost lease or the job's deadline. The outcome becomes the
status: succeeded | diverged | cancelled, failed "time limit exceeded" at the deadline, failed with the
message of any exception. A worker whose lease was taken over writes no final status (the new owner will).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from celery.exceptions import SoftTimeLimitExceeded

from core.results import Callbacks, Progress, Result
from core.settings import Settings
from core.spec import JobSpec
from core.store import LeaseOutcome, StoreInterface
from worker.lease import LeaseKeeper
from worker.reporting import StoreReporter

logger = logging.getLogger(__name__)

TIME_LIMIT_EXCEEDED = "time limit exceeded"
TrainFunction = Callable[[JobSpec, Callbacks, bytes | None, Settings], Result]


@dataclass(frozen=True)
class Delivery:
    """What became of one delivery: the lease outcome and the status written (None: nothing written)."""

    job_id: str
    lease: LeaseOutcome
    status: str | None = None


def owner_prefix(pid: int) -> str:
    """How the lease owners of every delivery by process `pid` on this host begin."""
    return f"{socket.gethostname()}:{pid}:"


def new_owner() -> str:
    """A lease owner unique to this delivery (host, process, random suffix)."""
    return f"{owner_prefix(os.getpid())}{uuid.uuid4().hex[:8]}"


def train_with_core(
    spec: JobSpec, callbacks: Callbacks, checkpoint: bytes | None, settings: Settings
) -> Result:
    # Imported here, in the pool child running the task: the worker's parent process never loads torch
    # or touches CUDA (a CUDA context does not survive a fork).
    from core.ml import run

    return run(spec, callbacks, checkpoint=checkpoint, settings=settings)


def train_job(
    store: StoreInterface,
    job_id: str,
    settings: Settings,
    owner: str | None = None,
    train: TrainFunction = train_with_core,
) -> Delivery:
    """Lease `job_id` and train it to a final status; a refused lease drops the delivery."""
    owner = owner if owner is not None else new_owner()
    lease = store.acquire_lease(job_id, owner, settings.lease_seconds, settings.max_lease_losses)
    if not lease.acquired or lease.job is None:
        logger.info("job %s: delivery dropped (%s)", job_id, lease.outcome)
        return Delivery(job_id, lease.outcome)
    spec_json = lease.job.spec
    deadline = time.monotonic() + settings.job_soft_time_limit_seconds

    with LeaseKeeper(store, job_id, owner, settings.heartbeat_seconds) as keeper:

        def should_stop() -> bool:
            return (
                keeper.cancel_requested.is_set() or keeper.lease_lost.is_set() or time.monotonic() >= deadline
            )

        reporter = StoreReporter(store, job_id, owner, should_stop)
        result: Result | None = None
        error: str | None = None
        try:
            if lease.job.progress is None:
                # Step 0 is shown at once, before the dataset loads and the net is built (a resumed job
                # keeps the progress it had until its run reports).
                reporter.on_progress(Progress(0, int(spec_json["steps"])))
            spec = JobSpec.model_validate(spec_json)
            stored = store.load_checkpoint(job_id)
            if stored is not None:
                logger.info("job %s: resuming from the checkpoint at step %d", job_id, stored[0])
            result = train(spec, reporter.callbacks(), None if stored is None else stored[1], settings)
            reporter.flush()
        except SoftTimeLimitExceeded:
            error = TIME_LIMIT_EXCEEDED
        except Exception as failure:
            logger.exception("job %s failed", job_id)
            error = f"{type(failure).__name__}: {failure}" if str(failure) else type(failure).__name__
        if result is None:
            _keep_partial_metrics(reporter, job_id)
        lease_lost = keeper.lease_lost.is_set()
        cancel_requested = keeper.cancel_requested.is_set()

    if lease_lost:
        return Delivery(job_id, lease.outcome)
    if result is None:
        status, summary, device = "failed", None, None
    else:
        status, summary, device = result.outcome, result.summary, result.device
        if result.outcome == "cancelled" and not cancel_requested:
            status, error = "failed", TIME_LIMIT_EXCEEDED  # stopped by the deadline, not by a user
        reporter.write_progress(
            Progress(result.steps_completed, int(spec_json["steps"]), result.summary.steps_per_second)
        )
    if not store.finish_job(job_id, owner, status, summary=summary, error=error, device=device):
        return Delivery(job_id, lease.outcome)
    return Delivery(job_id, lease.outcome, status)


def _keep_partial_metrics(reporter: StoreReporter, job_id: str) -> None:
    """A failed run keeps what it reported before failing, when the database lets it."""
    try:
        reporter.flush()
    except Exception:
        logger.warning("job %s: could not store its last metrics", job_id, exc_info=True)
