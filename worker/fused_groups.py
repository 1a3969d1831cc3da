"""One delivery of a fused group, from its leases to each job's final status — a plain function, tested
without Celery.

    group lease (all its jobs or none) → one lease keeper thread for all → the group's checkpoint
    → deadline starts → core.ml.fused.run_fused(specs, callbacks, on_model_result, on_sync_point) → each
      job's final status and summary as its model ends

Each job keeps being a job: it reports through its own callbacks (metrics, telemetry, progress, summary,
status) and has its own events and view, but the group stores its jobs' reports together
(`worker.group_reporting.GroupReporter`): one batched write of all their series and one progress statement
per sync point. A job is finished — its buffered series, status, summary, last progress — the moment its
model ends (`on_model_result`), not when the group does: a job that diverges or is
cancelled shows it while the others train on. A cancel request stops that job's model alone.
`should_stop` turns true for every model at the deadline or when any of the group's leases is lost (another
worker took the group over: then nothing is written). A job that had already finished when the group was
delivered again (cancelled, or diverged before the crash) still has its spec in the group, which the
group's checkpoint needs, but it is a passenger: it leaves at once and nothing is written for it. A job held
by this delivery whose model had ended before the checkpoint it resumes from, without the job being
finished (a checkpoint of a version before `on_model_result`), is finished with that stored result once
the group's run returns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from celery.exceptions import SoftTimeLimitExceeded

from core.results import Callbacks, Result
from core.settings import Settings
from core.spec import JobSpec
from core.store import LeaseResult, StoreInterface
from worker.delivery import (
    TIME_LIMIT_EXCEEDED,
    Deadline,
    Delivery,
    error_message,
    final_status,
    log_final_status,
    new_owner,
)
from worker.group_reporting import GroupReporter
from worker.lease import LeaseKeeper
from worker.training_core import TrainGroupFunction, train_group_with_core

logger = logging.getLogger(__name__)


@dataclass
class _Member:
    """One job of the delivered group; `reporter` is set when this delivery holds its lease."""

    job_id: str
    spec: JobSpec
    callbacks: Callbacks | None = None  # None: a passenger, not held by this delivery
    finished: bool = False  # its model ended and what became of it was written (or, lease lost, not)


def train_group(
    store: StoreInterface,
    job_ids: Sequence[str],
    settings: Settings,
    owner: str | None = None,
    train: TrainGroupFunction = train_group_with_core,
) -> list[Delivery]:
    """Lease the jobs of one fused group (in the order the group trains them) and train them together to
    their final statuses; one `Delivery` per job. Dropped whole when another worker holds the group."""
    owner = owner if owner is not None else new_owner()
    group_lease = store.acquire_group_lease(job_ids, owner, settings.lease_seconds, settings.max_lease_losses)
    if group_lease.held_elsewhere:
        logger.info("fused group of job %s: delivery dropped (another worker holds it)", job_ids[0])
        return [Delivery(job_id, "fresh_lease") for job_id in job_ids]
    leases = group_lease.leases
    statuses: dict[str, str] = {}
    if any(lease.acquired for lease in leases):
        statuses = _GroupDelivery(store, list(job_ids), leases, owner, settings).train(train)
    return [
        Delivery(job_id, lease.outcome, statuses.get(job_id))
        for job_id, lease in zip(job_ids, leases, strict=True)
    ]


class _GroupDelivery:
    """Training one leased group and writing what becomes of each job (used once, by `train_group`)."""

    def __init__(
        self,
        store: StoreInterface,
        job_ids: list[str],
        leases: list[LeaseResult],
        owner: str,
        settings: Settings,
    ) -> None:
        self.store = store
        self.job_ids = job_ids
        self.leases = leases
        self.owner = owner
        self.settings = settings
        self.held_ids = [job_id for job_id, lease in zip(job_ids, leases, strict=True) if lease.acquired]
        self.keeper = LeaseKeeper(store, self.held_ids, owner, settings.heartbeat_seconds)
        self.deadline = Deadline(settings.job_soft_time_limit_seconds)
        self.members: list[_Member] = []
        self.statuses: dict[str, str] = {}
        self.reporter = GroupReporter(store, owner)

    def train(self, train: TrainGroupFunction) -> dict[str, str]:
        """Train the group; returns the final status written for each job (none for the jobs still training
        when a lease was lost)."""
        error: str | None = None
        with self.keeper:
            try:
                self._run(train)
            except SoftTimeLimitExceeded:
                error = TIME_LIMIT_EXCEEDED
            except Exception as failure:
                logger.exception("fused group of job %s failed", self.job_ids[0])
                error = error_message(failure)
            if error is not None:
                self._keep_partial_metrics()
        if not self.keeper.lease_lost.is_set():
            self._fail_unfinished(error or "the group's training ended without a result for this job")
        return self.statuses

    def _run(self, train: TrainGroupFunction) -> None:
        group_id = self._group_id()
        self.members = [
            self._member(job_id, lease) for job_id, lease in zip(self.job_ids, self.leases, strict=True)
        ]
        stored = self.store.load_group_checkpoint(group_id)
        if stored is not None:
            logger.info("fused group %s: resuming from the checkpoint at step %d", group_id, stored[0])

        def on_group_checkpoint(step: int, blob: bytes) -> None:
            # Everything up to the checkpoint is stored first: a group resumed from it leaves no gap.
            self.reporter.flush()
            self.store.save_group_checkpoint(group_id, step, blob)

        def on_model_result(index: int, result: Result) -> None:
            self._finish(self.members[index], result)

        # Every job is finished by `on_model_result` as its model ends; the list returned repeats that.
        self.deadline.start()
        results = train(
            [member.spec for member in self.members],
            [self._callbacks(member) for member in self.members],
            None if stored is None else stored[1],
            self.settings,
            on_group_checkpoint,
            on_model_result,
            self.reporter.on_sync_point,
        )
        # A checkpoint written before `on_model_result` existed may hold a model that had ended (its result
        # is in the blob) while its job was never finished: resumed, its result comes back in the list only.
        for member, result in zip(self.members, results, strict=True):
            if not member.finished:
                self._finish(member, result)

    def _group_id(self) -> str:
        """The fused group the delivered jobs are — all of it, in its training order, which the group's
        checkpoint depends on."""
        groups = {lease.job.fused_group for lease in self.leases if lease.job is not None}
        group_id = groups.pop() if len(groups) == 1 else None
        if group_id is None or self.store.fused_group_job_ids(group_id) != self.job_ids:
            raise ValueError("the delivered jobs are not one fused group in its training order")
        return group_id

    def _member(self, job_id: str, lease: LeaseResult) -> _Member:
        assert lease.job is not None  # `_group_id` found every job
        member = _Member(job_id, lease.job.job_spec())
        if lease.acquired:
            member.callbacks = self.reporter.callbacks(job_id, self._should_stop(member))
        return member

    def _callbacks(self, member: _Member) -> Callbacks:
        if member.callbacks is None:
            return Callbacks(should_stop=lambda: True)  # a passenger: leaves at once, reports nothing
        return member.callbacks

    def _should_stop(self, member: _Member) -> Callable[[], bool]:
        def should_stop() -> bool:
            return self.keeper.should_stop(member.job_id) or self.deadline.passed()

        return should_stop

    def _finish(self, member: _Member, result: Result) -> None:
        """Its model has left the group: write the job's final status, summary and last progress now, while
        the others train on (nothing for a passenger, or once a lease was lost)."""
        if member.callbacks is None or self.keeper.lease_lost.is_set():
            member.finished = True
            return
        status, error = final_status(result, self.keeper.cancel_requested(member.job_id))
        self.reporter.finish(member.job_id)
        self.store.set_progress(
            member.job_id,
            result.steps_completed,
            member.spec.steps,
            result.summary.steps_per_second,
            owner=self.owner,
        )
        # No longer heartbeated: a finished job's lease is not renewed, and would count as lost.
        self.keeper.release(member.job_id)
        if self.store.finish_job(
            member.job_id, self.owner, status, summary=result.summary, error=error, device=result.device
        ):
            self.statuses[member.job_id] = status
            log_final_status(member.job_id, status, error)
        member.finished = True

    def _fail_unfinished(self, error: str) -> None:
        """Every job this delivery holds whose model did not end with a result (the group's run raised) is
        failed with the message."""
        finished = {member.job_id for member in self.members if member.finished}
        for job_id in self.held_ids:
            if job_id not in finished and self.store.finish_job(job_id, self.owner, "failed", error=error):
                self.statuses[job_id] = "failed"
                log_final_status(job_id, "failed", error)

    def _keep_partial_metrics(self) -> None:
        """A failed group keeps what each job reported before failing, when the database lets it."""
        try:
            self.reporter.flush()
        except Exception:
            logger.warning(
                "fused group of job %s: could not store its last metrics", self.job_ids[0], exc_info=True
            )
