"""One delivery of a fused group, from its leases to each job's final status — a plain function, tested
without Celery.

    group lease (all its jobs or none) → one heartbeat thread for all → the group's checkpoint
    → core.ml.fused.run_fused(specs, callbacks, on_model_result) → each job's final status and summary as
      its model ends

Each job keeps being a job: it reports through its own `StoreReporter` exactly as a separate delivery
does (metrics, telemetry, progress, summary, status), and is finished — status, summary, last progress —
the moment its model ends (`on_model_result`), not when the group does: a job that diverges or is
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
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import SQLAlchemyError

from core.results import Callbacks, Progress, Result
from core.settings import Settings
from core.spec import JobSpec
from core.store import LeaseResult, StoreInterface
from worker.lease import CANCEL_POLL_SECONDS
from worker.reporting import StoreReporter
from worker.training import TIME_LIMIT_EXCEEDED, Delivery, new_owner

logger = logging.getLogger(__name__)

GroupCheckpointHook = Callable[[int, bytes], None]
ModelResultHook = Callable[[int, Result], None]
TrainGroupFunction = Callable[
    [list[JobSpec], list[Callbacks], bytes | None, Settings, GroupCheckpointHook, ModelResultHook],
    list[Result],
]


def train_group_with_core(
    specs: list[JobSpec],
    callbacks: list[Callbacks],
    checkpoint: bytes | None,
    settings: Settings,
    on_group_checkpoint: GroupCheckpointHook,
    on_model_result: ModelResultHook,
) -> list[Result]:
    # Imported in the pool child running the task, as in `train_with_core`: the parent never loads torch.
    from core.ml.fused import run_fused

    return run_fused(specs, callbacks, checkpoint, settings, on_group_checkpoint, on_model_result)


class GroupLeaseKeeper:
    """Heartbeats `owner`'s leases on a group's jobs (one UPDATE for all) and reads their cancel flags, from
    one background thread until the `with` block ends."""

    def __init__(
        self,
        store: StoreInterface,
        job_ids: Sequence[str],
        owner: str,
        heartbeat_seconds: float,
        cancel_poll_seconds: float = CANCEL_POLL_SECONDS,
    ) -> None:
        self.store = store
        self.owner = owner
        self.heartbeat_seconds = heartbeat_seconds
        self.poll_seconds = min(cancel_poll_seconds, heartbeat_seconds)
        self.lease_lost = threading.Event()
        self.cancel_requested: frozenset[str] = frozenset()  # replaced whole by the thread, read by others
        self._held = set(job_ids)  # the jobs still running under this lease
        # Held while a heartbeat is in flight: a job released during one would be counted as lost.
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._keep, name=f"lease-group-{owner[-8:]}", daemon=True)

    def __enter__(self) -> GroupLeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *_exception: object) -> None:
        self._stopped.set()
        self._thread.join()

    def release(self, job_id: str) -> None:
        """Stop heartbeating `job_id` (call it before finishing the job, whose lease is then no longer
        running and would not be renewed)."""
        with self._lock:
            self._held.discard(job_id)

    def _keep(self) -> None:
        next_heartbeat = time.monotonic() + self.heartbeat_seconds
        while not self._stopped.wait(self.poll_seconds):
            try:
                with self._lock:
                    held = sorted(self._held)
                    self.cancel_requested = frozenset(self.store.cancel_requested_among(held))
                    if time.monotonic() < next_heartbeat:
                        continue
                    if self.store.heartbeat_jobs(held, self.owner) < len(held):
                        logger.warning("fused group of %s: a lease was lost, stopping", held[0])
                        self.lease_lost.set()
                        return
                next_heartbeat = time.monotonic() + self.heartbeat_seconds
            except SQLAlchemyError:
                # As for a single job: keep trying; a heartbeat that lands after the lease expired finds
                # the group taken over, and the group stops then.
                logger.warning("fused group of %s: heartbeat failed", held[0], exc_info=True)


@dataclass
class _Member:
    """One job of the delivered group; `reporter` is set when this delivery holds its lease."""

    job_id: str
    spec: JobSpec
    reporter: StoreReporter | None = None
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
        self.keeper = GroupLeaseKeeper(store, self.held_ids, owner, settings.heartbeat_seconds)
        self.deadline = time.monotonic() + settings.job_soft_time_limit_seconds
        self.members: list[_Member] = []
        self.statuses: dict[str, str] = {}

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
                error = f"{type(failure).__name__}: {failure}" if str(failure) else type(failure).__name__
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
            self._flush_reporters()
            self.store.save_group_checkpoint(group_id, step, blob)

        def on_model_result(index: int, result: Result) -> None:
            self._finish(self.members[index], result)

        # Every job is finished by `on_model_result` as its model ends; the list returned repeats that.
        results = train(
            [member.spec for member in self.members],
            [self._callbacks(member) for member in self.members],
            None if stored is None else stored[1],
            self.settings,
            on_group_checkpoint,
            on_model_result,
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
        member = _Member(job_id, JobSpec.model_validate(lease.job.spec))
        if lease.acquired:
            member.reporter = StoreReporter(self.store, job_id, self.owner, self._should_stop(member))
        return member

    def _callbacks(self, member: _Member) -> Callbacks:
        if member.reporter is None:
            return Callbacks(should_stop=lambda: True)  # a passenger: leaves at once, reports nothing
        return member.reporter.callbacks()

    def _should_stop(self, member: _Member) -> Callable[[], bool]:
        def should_stop() -> bool:
            return (
                member.job_id in self.keeper.cancel_requested
                or self.keeper.lease_lost.is_set()
                or time.monotonic() >= self.deadline
            )

        return should_stop

    def _finish(self, member: _Member, result: Result) -> None:
        """Its model has left the group: write the job's final status, summary and last progress now, while
        the others train on (nothing for a passenger, or once a lease was lost)."""
        reporter = member.reporter
        if reporter is None or self.keeper.lease_lost.is_set():
            member.finished = True
            return
        status: str = result.outcome
        error: str | None = None
        if result.outcome == "cancelled" and member.job_id not in self.keeper.cancel_requested:
            status, error = "failed", TIME_LIMIT_EXCEEDED  # stopped by the deadline, not by a user
        reporter.flush()
        reporter.write_progress(
            Progress(result.steps_completed, member.spec.steps, result.summary.steps_per_second)
        )
        # No longer heartbeated: a finished job's lease is not renewed, and would count as lost.
        self.keeper.release(member.job_id)
        if self.store.finish_job(
            member.job_id, self.owner, status, summary=result.summary, error=error, device=result.device
        ):
            self.statuses[member.job_id] = status
        member.finished = True

    def _fail_unfinished(self, error: str) -> None:
        """Every job this delivery holds whose model did not end with a result (the group's run raised) is
        failed with the message."""
        finished = {member.job_id for member in self.members if member.finished}
        for job_id in self.held_ids:
            if job_id not in finished and self.store.finish_job(job_id, self.owner, "failed", error=error):
                self.statuses[job_id] = "failed"

    def _flush_reporters(self) -> None:
        for member in self.members:
            if member.reporter is not None and not member.finished:
                member.reporter.flush()

    def _keep_partial_metrics(self) -> None:
        """A failed group keeps what each job reported before failing, when the database lets it."""
        try:
            self._flush_reporters()
        except Exception:
            logger.warning(
                "fused group of job %s: could not store its last metrics", self.job_ids[0], exc_info=True
            )
