"""What the store promises, declared apart from how it keeps it: one `Protocol` per part, and
`StoreInterface`, all of them together. The API and the worker depend on these; `core.store.Store` (SQL on
PostgreSQL or SQLite) implements each part in a module of its own, and mypy checks that it keeps them all.

Every method hands out plain records (`core.store.views`), never ORM rows. Non-finite floats (NaN, ±inf)
are stored as NULL and read back as None. Reading or writing the series, checkpoints or metric steps
of a job (or fused group) that does not exist raises `JobNotFound`; the other methods pass over an
unknown id (they answer None, False, nothing, or a result without it).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol

from core.results import LandscapeRecord, MetricPoint, Summary, TelemetryRecord
from core.spec import JobSpec
from core.store.interface_support import (
    DatasetStoreInterface,
    HousekeepingStoreInterface,
    IdempotencyStoreInterface,
    OperationsStoreInterface,
    WorkerStoreInterface,
)
from core.store.views import (
    Crossing,
    GroupLease,
    JobEventState,
    JobView,
    LandscapeView,
    LayerFigures,
    LayerTelemetry,
    LeaseResult,
    MetricSeries,
    MetricStep,
    RepublishCandidate,
    SeriesWithCrossing,
    SweepProgress,
    SweepView,
)

MAX_METRIC_STEPS_PER_READ = 2000  # evaluation steps per job and read; a long replay takes a few reads


class DatabaseInterface(Protocol):
    """The database behind the store."""

    url: str
    is_postgres: bool  # PostgreSQL (which announces changes, `core.store.notifications`), not SQLite

    def ping(self) -> None:
        """Raises (sqlalchemy.exc.OperationalError) when the database cannot be reached or is not migrated."""
        ...

    def dispose(self) -> None:
        """Close the pooled connections (a process that forked makes a store of its own)."""
        ...


class JobStoreInterface(Protocol):
    """Jobs as the API sees them: create, mark published, read, list, cancel."""

    def create_job(self, spec: JobSpec) -> JobView:
        """Commit a queued job (not yet published: `enqueued_at` is null until `mark_enqueued`)."""
        ...

    def mark_enqueued(self, *job_ids: str) -> None:
        """Record that the jobs reached the broker (a job's own task, or the one task of a fused group).

        While a job is queued, or when a fast worker already took it (on Redis the lease is often taken
        before the publisher gets here): the first publication time is kept either way.
        """
        ...

    def get_job(self, job_id: str) -> JobView | None:
        """The job, or None when it does not exist."""
        ...

    def get_jobs(self, job_ids: Sequence[str]) -> dict[str, JobView]:
        """The jobs of those ids that exist, by id, in one query."""
        ...

    def list_jobs(
        self,
        status: str | None = None,
        sweep_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        tag: str | None = None,
        archived: bool | None = False,
    ) -> tuple[list[JobView], str | None]:
        """A page of jobs, newest first, and the cursor of the next page (None on the last one).

        `tag`: only jobs carrying it. `archived`: False (the default) leaves out archived jobs and the jobs
        of archived sweeps, True lists only those, None lists both.

        Raises `InvalidCursor` for a cursor this store did not hand out.
        """
        ...

    def request_cancel(self, job_id: str) -> JobView | None:
        """Queued → cancelled at once; running → `cancel_requested` (the worker stops it); a finished job
        is left as it is (the caller answers with a conflict). None when the job does not exist."""
        ...


class SweepStoreInterface(Protocol):
    """Sweeps: a grid of jobs created together, some of them trained together in fused groups."""

    def create_sweep(
        self,
        name: str,
        base: JobSpec,
        grid: Mapping[str, Sequence[Any]],
        seeds: Sequence[int],
        execution: str,
        specs: Sequence[JobSpec],
        fused_groups: Sequence[Sequence[int]] = (),
    ) -> SweepView:
        """Commit the sweep, all its (queued, unpublished) jobs and its fused groups in one transaction.

        `fused_groups` lists, per group, the indices into `specs` of the jobs one task trains together (at
        least two each, no job in two groups); those jobs are executed `fused`, every other one `separate`.
        Raises ValueError for an unknown `execution` or groups that break those rules.
        """
        ...

    def get_sweep(self, sweep_id: str) -> SweepView | None:
        """The sweep with its jobs' ids and statuses and its fused groups, or None when it does not exist."""
        ...

    def list_sweeps(
        self,
        limit: int = 50,
        cursor: str | None = None,
        tag: str | None = None,
        archived: bool | None = False,
    ) -> tuple[list[SweepView], str | None]:
        """A page of sweeps, newest first, and the cursor of the next page (None on the last one).

        `tag`: only sweeps carrying it. `archived`: False (the default) leaves out archived sweeps, True
        lists only those, None lists both.

        Raises `InvalidCursor` for a cursor this store did not hand out.
        """
        ...

    def sweep_jobs(self, sweep_id: str) -> list[JobView]:
        """Every job of the sweep in creation order."""
        ...

    def sweep_progress(self, sweep_id: str) -> SweepProgress:
        """Steps done and to do and the current training rate over the sweep's jobs, summed in SQL from
        their progress columns (one query, whatever the sweep's size); zeros for an unknown sweep."""
        ...


class LeaseStoreInterface(Protocol):
    """The worker's side of a job. Every transition is conditional on the row as it stands, so concurrent
    workers and re-publishers race without locks: whoever changes the row first wins."""

    def acquire_lease(
        self, job_id: str, owner: str, lease_seconds: float, max_lease_losses: int = 3
    ) -> LeaseResult:
        """Take the job for `owner`: when it is queued, or running under a lease whose heartbeat is older
        than `lease_seconds` (a dead worker: counted as a lease loss; the `max_lease_losses`-th loss fails
        the job instead). Refused while another lease is fresh or when the job is finished. Taking the
        lease sets status running, counts an attempt and starts the heartbeat."""
        ...

    def heartbeat(self, job_id: str, owner: str) -> bool:
        """Renew `owner`'s lease; False when the lease is no longer theirs (stop training)."""
        ...

    def is_cancel_requested(self, job_id: str) -> bool:
        """Whether a user asked to cancel the job."""
        ...

    def set_progress(
        self, job_id: str, step: int, steps: int, steps_per_second: float | None, owner: str | None = None
    ) -> None:
        """Overwrite the job's one progress row (only while `owner` holds the lease, when given)."""
        ...

    def set_group_progress(
        self, job_ids: Sequence[str], step: int, steps: int, steps_per_second: float | None, owner: str
    ) -> None:
        """Overwrite the progress of each of `job_ids` still running under `owner`'s lease, in a number of
        statements that does not grow with theirs (a fused group's progress at a sync point)."""
        ...

    def finish_job(
        self,
        job_id: str,
        owner: str,
        status: str,
        summary: Summary | None = None,
        error: str | None = None,
        device: str | None = None,
    ) -> bool:
        """Set the final status, if `owner` still holds the lease of the running job (False otherwise).
        Raises ValueError for a status that is not final."""
        ...

    def fail_jobs_leased_by(self, job_ids: Sequence[str], owner_prefix: str, error: str) -> list[str]:
        """Fail those of `job_ids` still running under a lease whose owner begins with `owner_prefix` (every
        delivery of one process, as when that process was killed); the ids failed."""
        ...

    def save_checkpoint(self, job_id: str, step: int, blob: bytes) -> None:
        """Keep `blob` as the job's latest checkpoint (replacing the previous one)."""
        ...

    def load_checkpoint(self, job_id: str) -> tuple[int, bytes] | None:
        """(step, blob) of the job's latest checkpoint, or None."""
        ...


class FusedGroupStoreInterface(Protocol):
    """The worker's side of a fused group: its jobs are leased, renewed and go stale together, so a group
    is never split between two workers."""

    def acquire_group_lease(
        self, job_ids: Sequence[str], owner: str, lease_seconds: float, max_lease_losses: int = 3
    ) -> GroupLease:
        """Take the lease of each of `job_ids` for `owner` as `acquire_lease` takes one, in one transaction.

        All or nothing: when another worker holds a fresh lease on any of them (a duplicate delivery of a
        group that is training), nothing changes and the result is `held_elsewhere`. Finished jobs are
        reported as such and left alone; the others are all taken (or failed, on their last lease loss).
        """
        ...

    def heartbeat_jobs(self, job_ids: Sequence[str], owner: str) -> int:
        """Renew `owner`'s lease on each of `job_ids` at once; how many were still `owner`'s and running
        (fewer than asked: another worker took some over)."""
        ...

    def cancel_requested_among(self, job_ids: Sequence[str]) -> set[str]:
        """Which of `job_ids` a user asked to cancel."""
        ...

    def fused_group_job_ids(self, group_id: str) -> list[str]:
        """The jobs of fused group `group_id` in the order the group trains them (job creation order)."""
        ...

    def save_group_checkpoint(self, group_id: str, step: int, blob: bytes) -> None:
        """Keep `blob` as the fused group's latest checkpoint (replacing the previous one)."""
        ...

    def load_group_checkpoint(self, group_id: str) -> tuple[int, bytes] | None:
        """(step, blob) of the fused group's latest checkpoint, or None."""
        ...


class RepublishStoreInterface(Protocol):
    """The API's side of lost jobs: find them, and claim each for publication again. Several API replicas
    may look at once; exactly one of them wins each claim."""

    def jobs_needing_publish(
        self, unpublished_after_seconds: float, requeue_after_seconds: float
    ) -> list[RepublishCandidate]:
        """Queued jobs never published `unpublished_after_seconds` after creation (the broker was down),
        or published longer than `requeue_after_seconds` ago and still waiting (the message was lost)."""
        ...

    def stale_running_jobs(
        self, lease_seconds: float, requeue_after_seconds: float | None = None
    ) -> list[RepublishCandidate]:
        """Running jobs whose heartbeat is older than `lease_seconds` (their worker died) and that were not
        published again since (or, with `requeue_after_seconds`, whose republication is that old)."""
        ...

    def claim_republish(self, candidate: RepublishCandidate) -> bool:
        """Mark the candidate as published now, if its row is still exactly as read; True means this
        caller (and no other) publishes it."""
        ...

    def release_republish(self, candidate: RepublishCandidate) -> None:
        """Undo a claim whose publication failed (broker down), so the next look finds the job again."""
        ...


class SeriesStoreInterface(Protocol):
    """A job's per-step series: metrics, layer telemetry, loss-landscape probes."""

    def write_metrics(self, job_id: str, points: Sequence[MetricPoint]) -> None:
        """Store a batch of points in one transaction; rewriting a (name, step) replaces its value, so a
        redelivered job rewrites and never duplicates. Within a batch the last point of a key wins."""
        ...

    def write_series_of_jobs(
        self,
        metrics: Mapping[str, Sequence[MetricPoint]],
        telemetry: Mapping[str, Sequence[TelemetryRecord]] | None = None,
        landscape: Mapping[str, Sequence[LandscapeRecord]] | None = None,
    ) -> None:
        """Many jobs' metric points, telemetry and landscape records (keyed by job id), each as
        `write_metrics`, `write_telemetry` and `write_landscape` store them, in one transaction whose number
        of statements does not grow with the number of jobs (a fused group's reports of one sync point)."""
        ...

    def read_metrics(
        self, job_id: str, names: Sequence[str] | None = None, max_points: int = 1000
    ) -> MetricSeries:
        """{name: (steps, values)} for the named series (all of the job's when None; a named series
        without points comes back empty), in step order.

        A series longer than `max_points` is downsampled: its steps are cut into max_points // 4 equal
        buckets and each bucket keeps its first, last, lowest and highest point, so the curve's ends and
        extremes (a divergence spike included) survive. Raises ValueError for `max_points` below 4.
        """
        ...

    def write_telemetry(self, job_id: str, records: Sequence[TelemetryRecord]) -> None:
        """Store layer statistics; rewriting a (step, layer) replaces it."""
        ...

    def read_telemetry(self, job_id: str) -> list[LayerTelemetry]:
        """Per hidden layer (in layer order), the probe steps and each statistic as parallel lists."""
        ...

    def read_gradient_ics(self, job_ids: Sequence[str]) -> dict[str, list[LayerFigures]]:
        """Per job, per hidden layer in layer order: (layer, ‖G − G′‖₂ at each probe step, cos(G, G′) at
        each), in step order, None where not measured or not finite — the two columns alone, every job's in
        one query. Raises JobNotFound for an unknown id."""
        ...

    def write_landscape(self, job_id: str, records: Sequence[LandscapeRecord]) -> None:
        """Store loss-landscape probes; rewriting a step replaces it."""
        ...

    def read_landscape(self, job_id: str) -> list[LandscapeView]:
        """The job's loss-landscape probes in step order."""
        ...


class TargetStoreInterface(Protocol):
    """Where stored series first met a target, at full resolution even where the series is downsampled."""

    def first_step_meeting(
        self, job_id: str, name: str, target: float, higher_is_better: bool
    ) -> Crossing | None:
        """(step, value) of the first point of series `name` whose value is ≥ target (≤ for a metric that
        improves downwards, a loss), or None when it never did. Non-finite values never count."""
        ...

    def read_series_with_crossings(
        self,
        job_ids: Sequence[str],
        name: str,
        max_points: int,
        target: float | None,
        higher_is_better: bool,
    ) -> dict[str, SeriesWithCrossing]:
        """Per job: its series `name` downsampled to `max_points` (as `read_metrics`) and where it first
        met `target` (as `first_step_meeting`), in a few round trips however many jobs are asked for."""
        ...


class EventStoreInterface(Protocol):
    """The reads behind job event streams, built for one poller serving many streams."""

    def job_event_states(self, job_ids: Collection[str]) -> dict[str, JobEventState]:
        """The current state of each job that exists, by public id, in one query."""
        ...

    def metric_steps_after(
        self, job_id: str, after_step: int, max_steps: int = MAX_METRIC_STEPS_PER_READ
    ) -> list[MetricStep]:
        """The job's metric points at steps after `after_step`, grouped by step, in step order; at most
        `max_steps` steps, each complete (all its names), so a caller can continue from the last one."""
        ...


class StoreInterface(
    DatabaseInterface,
    JobStoreInterface,
    SweepStoreInterface,
    LeaseStoreInterface,
    FusedGroupStoreInterface,
    RepublishStoreInterface,
    SeriesStoreInterface,
    TargetStoreInterface,
    EventStoreInterface,
    HousekeepingStoreInterface,
    DatasetStoreInterface,
    WorkerStoreInterface,
    OperationsStoreInterface,
    IdempotencyStoreInterface,
    Protocol,
):
    """The whole store: what the API and the worker may ask of it."""
