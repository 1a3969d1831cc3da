"""One delivery of a training job, from lease to final status — a plain function, tested without Celery.

    lease → lease keeper thread → progress at step 0 → latest checkpoint → deadline starts
          → core.ml.run(spec, callbacks) → final status + summary

`should_stop` turns true on a cancel request, a lost lease or the job's deadline. The outcome becomes the
status: succeeded | diverged | cancelled, failed "time limit exceeded" at the deadline, failed with the
message of any exception. A worker whose lease was taken over writes no final status (the new owner will).
"""

from __future__ import annotations

import logging

from celery.exceptions import SoftTimeLimitExceeded

from core.results import Progress, Result
from core.settings import Settings
from core.store import StoreInterface
from worker.delivery import (
    TIME_LIMIT_EXCEEDED,
    Deadline,
    Delivery,
    error_message,
    final_status,
    log_final_status,
    new_owner,
)
from worker.lease import LeaseKeeper
from worker.reporting import StoreReporter
from worker.training_core import TrainFunction, train_with_core

logger = logging.getLogger(__name__)


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
    deadline = Deadline(settings.job_soft_time_limit_seconds)

    with LeaseKeeper(store, [job_id], owner, settings.heartbeat_seconds) as keeper:
        reporter = StoreReporter(
            store, job_id, owner, lambda: keeper.should_stop(job_id) or deadline.passed()
        )
        result: Result | None = None
        error: str | None = None
        try:
            if lease.job.progress is None:
                # Step 0 is shown at once, before the dataset loads and the net is built (a resumed job
                # keeps the progress it had until its run reports).
                reporter.on_progress(Progress(0, int(spec_json["steps"])))
            spec = lease.job.job_spec()
            stored = store.load_checkpoint(job_id)
            if stored is not None:
                logger.info("job %s: resuming from the checkpoint at step %d", job_id, stored[0])
            deadline.start()
            result = train(spec, reporter.callbacks(), None if stored is None else stored[1], settings)
            reporter.flush()
        except SoftTimeLimitExceeded:
            error = TIME_LIMIT_EXCEEDED
        except Exception as failure:
            logger.exception("job %s failed", job_id)
            error = error_message(failure)
        if result is None:
            _keep_partial_metrics(reporter, job_id)
        lease_lost = keeper.lease_lost.is_set()
        cancel_requested = keeper.cancel_requested(job_id)

    if lease_lost:
        return Delivery(job_id, lease.outcome)
    if result is None:
        status, summary, device = "failed", None, None
    else:
        status, error = final_status(result, cancel_requested)
        summary, device = result.summary, result.device
        reporter.write_progress(
            Progress(result.steps_completed, int(spec_json["steps"]), result.summary.steps_per_second)
        )
    if not store.finish_job(job_id, owner, status, summary=summary, error=error, device=device):
        return Delivery(job_id, lease.outcome)
    log_final_status(job_id, status, error)
    return Delivery(job_id, lease.outcome, status)


def _keep_partial_metrics(reporter: StoreReporter, job_id: str) -> None:
    """A failed run keeps what it reported before failing, when the database lets it."""
    try:
        reporter.flush()
    except Exception:
        logger.warning("job %s: could not store its last metrics", job_id, exc_info=True)
