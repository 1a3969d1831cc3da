"""One delivery of a fused group, from its leases to each job's final status — a plain function, tested
without Celery.

    group lease (all its jobs or none) → one heartbeat thread for all → the group's checkpoint
    → core.ml.fused.run_fused(specs, callbacks) → each job's final status and summary

Each job keeps being a job: it reports through its own `StoreReporter` exactly as a separate delivery
does (metrics, telemetry, progress, summary, status), and a cancel request stops that job's model alone —
its status is written as soon as its model leaves the group, its summary when the group's run returns.
`should_stop` turns true for every model at the deadline or when any of the group's leases is lost (another
worker took the group over: then nothing is written). A job that had already finished when the group was
delivered again (cancelled, or diverged before the crash) still has its spec in the group, which the
group's checkpoint needs, but it is a passenger: it leaves at once and nothing is written for it.
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
from core.store import LeaseResult, Store
from worker.lease import CANCEL_POLL_SECONDS
from worker.reporting import StoreReporter
from worker.training import TIME_LIMIT_EXCEEDED, Delivery, new_owner

logger = logging.getLogger(__name__)

GroupCheckpointHook = Callable[[int, bytes], None]
TrainGroupFunction = Callable[
    [list[JobSpec], list[Callbacks], bytes | None, Settings, GroupCheckpointHook], list[Result]
]


def train_group_with_core(
    specs: list[JobSpec],
    callbacks: list[Callbacks],
    checkpoint: bytes | None,
    settings: Settings,
    on_group_checkpoint: GroupCheckpointHook,
) -> list[Result]:
    # Imported in the pool child running the task, as in `train_with_core`: the parent never loads torch.
    from core.ml.fused import run_fused

    return run_fused(specs, callbacks, checkpoint, settings, on_group_checkpoint)


class GroupLeaseKeeper:
    """Heartbeats `owner`'s leases on a group's jobs (one UPDATE for all) and reads their cancel flags, from
    one background thread until the `with` block ends."""

    def __init__(
        self,
        store: Store,
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
    left_early: bool = False  # cancelled and finished while the others trained on


def train_group(
    store: Store,
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
        self, store: Store, job_ids: list[str], leases: list[LeaseResult], owner: str, settings: Settings
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
        """Train the group; returns the final status written for each job (none when a lease was lost)."""
        results: list[Result] | None = None
        error: str | None = None
        with self.keeper:
            try:
                results = self._run(train)
            except SoftTimeLimitExceeded:
                error = TIME_LIMIT_EXCEEDED
            except Exception as failure:
                logger.exception("fused group of job %s failed", self.job_ids[0])
                error = f"{type(failure).__name__}: {failure}" if str(failure) else type(failure).__name__
            if results is None:
                self._keep_partial_metrics()
        if self.keeper.lease_lost.is_set():
            return {}
        if results is None:
            self._fail_held(error or "the group's training ended without results")
        else:
            cancel_requested = self.keeper.cancel_requested
            for member, result in zip(self.members, results, strict=True):
                self._finish(member, result, member.job_id in cancel_requested)
        return self.statuses

    def _run(self, train: TrainGroupFunction) -> list[Result]:
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

        results = train(
            [member.spec for member in self.members],
            [self._callbacks(member) for member in self.members],
            None if stored is None else stored[1],
            self.settings,
            on_group_checkpoint,
        )
        self._flush_reporters()
        return results

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
            if self.keeper.lease_lost.is_set() or time.monotonic() >= self.deadline:
                return True
            if member.job_id in self.keeper.cancel_requested:
                # The fused trainer ends a model as soon as its `should_stop` is true: finish its job now
                # rather than when the whole group is done.
                self._leave_cancelled(member)
                return True
            return False

        return should_stop

    def _leave_cancelled(self, member: _Member) -> None:
        reporter = member.reporter
        assert reporter is not None
        member.left_early = True
        reporter.flush()
        if reporter.last_progress is not None:
            reporter.write_progress(reporter.last_progress)
        self.keeper.release(member.job_id)
        if self.store.finish_job(member.job_id, self.owner, "cancelled"):
            self.statuses[member.job_id] = "cancelled"

    def _finish(self, member: _Member, result: Result, cancel_requested: bool) -> None:
        """Write the job's final status from its model's result (only its summary, if it left early)."""
        reporter = member.reporter
        if reporter is None:
            return
        if member.left_early:
            self.store.record_summary(member.job_id, self.owner, result.summary, result.device)
            return
        status: str = result.outcome
        error: str | None = None
        if result.outcome == "cancelled" and not cancel_requested:
            status, error = "failed", TIME_LIMIT_EXCEEDED  # stopped by the deadline, not by a user
        reporter.write_progress(
            Progress(result.steps_completed, member.spec.steps, result.summary.steps_per_second)
        )
        if self.store.finish_job(
            member.job_id, self.owner, status, summary=result.summary, error=error, device=result.device
        ):
            self.statuses[member.job_id] = status

    def _fail_held(self, error: str) -> None:
        """The group's run raised: every job this delivery still holds is failed with the message."""
        left_early = {member.job_id for member in self.members if member.left_early}
        for job_id in self.held_ids:
            if job_id not in left_early and self.store.finish_job(job_id, self.owner, "failed", error=error):
                self.statuses[job_id] = "failed"

    def _flush_reporters(self) -> None:
        for member in self.members:
            if member.reporter is not None and not member.left_early:
                member.reporter.flush()

    def _keep_partial_metrics(self) -> None:
        """A failed group keeps what each job reported before failing, when the database lets it."""
        try:
            self._flush_reporters()
        except Exception:
            logger.warning(
                "fused group of job %s: could not store its last metrics", self.job_ids[0], exc_info=True
            )
