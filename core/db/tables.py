"""The SQL tables: jobs, sweeps, metrics (integer-keyed, names interned) and their rollup, telemetry,
landscape probes, the latest checkpoint per job, the fused groups of sweeps (which jobs train
together, their checkpoint), and the answers to POSTs sent with an `Idempotency-Key`.

Non-finite floats (NaN, ±inf) are stored as NULL everywhere: SQL and JSON have no portable NaN, and a NULL
can never sort above a real number. The migrations in `migrations/` create exactly this schema.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.db.types import BigIntegerKey, SmallIntegerKey, UtcDateTime

# Constraint names are derived, never left to the database, so migrations can name what they drop.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "diverged", "cancelled")
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "diverged", "cancelled"})
EXECUTIONS = ("separate", "fused")
PUBLIC_ID_LENGTH = 32  # UUID4 as hex
NAME_LENGTH = 200
# Tags are kept as one delimited string, ",a,b,", so `?tag=a` is a portable `LIKE '%,a,%'` on both databases
# (a tag never holds a comma: `core.housekeeping`).
TAG_DELIMITER = ","
METRIC_NAME_LENGTH = 100
IDEMPOTENCY_KEY_LENGTH = 200
# Steps per metric rollup block. 16 keeps both halves of a downsampled read small for the long series it
# exists for (50,000 evaluations cut into 250 buckets: ~3,100 block rows plus ~250 edge blocks of ≤ 16
# points). The migration that fills the rollup uses the same number; changing it means rebuilding it.
ROLLUP_BLOCK_STEPS = 16

# A block's points inline (PostgreSQL arrays); SQLite has no arrays and leaves these columns NULL.
_STEP_ARRAY: sa.types.TypeEngine[Any] = postgresql.ARRAY(sa.Integer()).with_variant(sa.JSON(), "sqlite")
_VALUE_ARRAY: sa.types.TypeEngine[Any] = postgresql.ARRAY(sa.Double()).with_variant(sa.JSON(), "sqlite")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    listed = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({listed})"


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(),
        dict[str, Any]: sa.JSON(),
        list[Any]: sa.JSON(),
    }


class Sweep(Base):
    """A grid of job specs (× seeds) submitted together; its jobs point back to it."""

    __tablename__ = "sweep"
    __table_args__ = (sa.CheckConstraint(_one_of("execution", EXECUTIONS), name="execution_known"),)

    id: Mapped[int] = mapped_column(BigIntegerKey, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(sa.String(PUBLIC_ID_LENGTH), unique=True)
    name: Mapped[str] = mapped_column(sa.String(NAME_LENGTH), default="")
    base: Mapped[dict[str, Any]]
    grid: Mapped[dict[str, Any]]
    seeds: Mapped[list[Any]]
    execution: Mapped[str] = mapped_column(sa.String(16))
    size: Mapped[int]
    created_at: Mapped[datetime]
    tags: Mapped[str] = mapped_column(sa.Text(), default="", server_default="")
    note: Mapped[str] = mapped_column(sa.Text(), default="", server_default="")
    archived: Mapped[bool] = mapped_column(default=False, server_default=sa.false())


class Job(Base):
    """One training run: its spec, lifecycle, lease (owner + heartbeat), latest progress and summary."""

    __tablename__ = "job"
    __table_args__ = (
        sa.CheckConstraint(_one_of("status", JOB_STATUSES), name="status_known"),
        sa.CheckConstraint(
            f"execution IS NULL OR {_one_of('execution', EXECUTIONS)}", name="execution_known"
        ),
        # Listing is newest first (row id descending), optionally filtered by status or sweep.
        sa.Index(None, "status", "id"),
        sa.Index(None, "sweep_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntegerKey, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(sa.String(PUBLIC_ID_LENGTH), unique=True)
    name: Mapped[str] = mapped_column(sa.String(NAME_LENGTH), default="")
    status: Mapped[str] = mapped_column(sa.String(16))
    spec: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    enqueued_at: Mapped[datetime | None]  # null until published to the broker
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    progress_step: Mapped[int | None]
    progress_steps: Mapped[int | None]
    steps_per_second: Mapped[float | None] = mapped_column(sa.Double())
    summary: Mapped[dict[str, Any] | None]
    device: Mapped[str | None] = mapped_column(sa.String(32))
    error: Mapped[str | None] = mapped_column(sa.Text())
    lease_owner: Mapped[str | None] = mapped_column(sa.String(NAME_LENGTH))
    heartbeat_at: Mapped[datetime | None]
    lease_losses: Mapped[int] = mapped_column(default=0)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    sweep_id: Mapped[int | None] = mapped_column(BigIntegerKey, sa.ForeignKey("sweep.id"))
    execution: Mapped[str | None] = mapped_column(sa.String(16))
    tags: Mapped[str] = mapped_column(sa.Text(), default="", server_default="")
    note: Mapped[str] = mapped_column(sa.Text(), default="", server_default="")
    archived: Mapped[bool] = mapped_column(default=False, server_default=sa.false())


class MetricName(Base):
    """Interned metric names, so the metric table is keyed by small integers."""

    __tablename__ = "metric_name"

    id: Mapped[int] = mapped_column(SmallIntegerKey, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(METRIC_NAME_LENGTH), unique=True)


class Metric(Base):
    """One value of one metric of one job at one step; the key makes rewrites idempotent.

    The hottest table has no foreign keys on purpose: PostgreSQL checks a foreign key with a trigger per
    inserted row, which made batched ingestion four times slower (measured: 80,000 points in 0.9 s with
    both keys, 0.22 s without). The store is its only writer and resolves the job and name ids from their
    tables before writing, and deletes a job's points in the transaction that deletes the job
    (`core.store.housekeeping`); metric names are never deleted.
    """

    __tablename__ = "metric"

    job_id: Mapped[int] = mapped_column(BigIntegerKey, primary_key=True, autoincrement=False)
    name_id: Mapped[int] = mapped_column(SmallIntegerKey, primary_key=True, autoincrement=False)
    step: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    value: Mapped[float | None] = mapped_column(sa.Double())  # NULL = not finite


class MetricRollup(Base):
    """One block of ROLLUP_BLOCK_STEPS steps of one series (block = step // ROLLUP_BLOCK_STEPS): how many
    points it holds and its first, last, lowest and highest point. Lowest/highest are over finite values
    only (NULL when the block has none), earliest step on ties — the same choice the downsampling makes.

    Written only by the store's batch write (no foreign keys, like `metric`; deleted with its job), which
    recomputes every block a batch touches from `metric` (so a rewrite with other values keeps it right). A
    downsampled read combines the blocks that lie inside one bucket and looks at single points only in
    blocks that straddle a bucket edge. PostgreSQL also keeps those points inline (`point_steps`/
    `point_values`, in step order) so such a read never goes back to `metric`; SQLite reads them from
    `metric`.
    """

    __tablename__ = "metric_rollup"

    job_id: Mapped[int] = mapped_column(BigIntegerKey, primary_key=True, autoincrement=False)
    name_id: Mapped[int] = mapped_column(SmallIntegerKey, primary_key=True, autoincrement=False)
    block: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    points: Mapped[int]
    first_step: Mapped[int]
    first_value: Mapped[float | None] = mapped_column(sa.Double())
    last_step: Mapped[int]
    last_value: Mapped[float | None] = mapped_column(sa.Double())
    lowest_step: Mapped[int | None]
    lowest_value: Mapped[float | None] = mapped_column(sa.Double())
    highest_step: Mapped[int | None]
    highest_value: Mapped[float | None] = mapped_column(sa.Double())
    point_steps: Mapped[list[int] | None] = mapped_column(_STEP_ARRAY)
    point_values: Mapped[list[float | None] | None] = mapped_column(_VALUE_ARRAY)


class Telemetry(Base):
    """Statistics of one hidden layer's nonlinearity input at one step (paper Fig. 1(b,c))."""

    __tablename__ = "telemetry"

    job_id: Mapped[int] = mapped_column(
        BigIntegerKey, sa.ForeignKey("job.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    step: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    layer: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    unit_p15: Mapped[float | None] = mapped_column(sa.Double())
    unit_p50: Mapped[float | None] = mapped_column(sa.Double())
    unit_p85: Mapped[float | None] = mapped_column(sa.Double())
    p15: Mapped[float | None] = mapped_column(sa.Double())
    p50: Mapped[float | None] = mapped_column(sa.Double())
    p85: Mapped[float | None] = mapped_column(sa.Double())
    mean: Mapped[float | None] = mapped_column(sa.Double())
    std: Mapped[float | None] = mapped_column(sa.Double())
    saturated_fraction: Mapped[float | None] = mapped_column(sa.Double())
    grad_norm: Mapped[float | None] = mapped_column(sa.Double())
    ics_gradient_change: Mapped[float | None] = mapped_column(sa.Double())
    ics_gradient_cosine: Mapped[float | None] = mapped_column(sa.Double())


class Landscape(Base):
    """A loss-landscape probe along the gradient at one step; the per-step-size lists are JSON."""

    __tablename__ = "landscape"

    job_id: Mapped[int] = mapped_column(
        BigIntegerKey, sa.ForeignKey("job.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    step: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    step_sizes: Mapped[list[Any]]
    losses: Mapped[list[Any]]
    loss_range: Mapped[float | None] = mapped_column(sa.Double())
    gradient_predictiveness: Mapped[float | None] = mapped_column(sa.Double())
    beta_smoothness: Mapped[float | None] = mapped_column(sa.Double())
    grad_norm: Mapped[float | None] = mapped_column(sa.Double())
    relative_gradient_change: Mapped[float | None] = mapped_column(sa.Double())


class Checkpoint(Base):
    """The latest resumable snapshot of a job (model, optimizer, RNG state, step), overwritten in place."""

    __tablename__ = "checkpoint"

    job_id: Mapped[int] = mapped_column(
        BigIntegerKey, sa.ForeignKey("job.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    step: Mapped[int]
    blob: Mapped[bytes] = mapped_column(sa.LargeBinary())
    saved_at: Mapped[datetime]


class FusedGroup(Base):
    """Jobs of a sweep that one task trains together as stacked models (`core.fused_groups`); two or more."""

    __tablename__ = "fused_group"

    id: Mapped[int] = mapped_column(BigIntegerKey, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(sa.String(PUBLIC_ID_LENGTH), unique=True)
    sweep_id: Mapped[int] = mapped_column(BigIntegerKey, sa.ForeignKey("sweep.id"))
    size: Mapped[int]
    created_at: Mapped[datetime]


class FusedGroupJob(Base):
    """A job's place in its fused group (a job is in one group at most; the group trains its jobs in job
    row order). A table of its own rather than a column of `job`: SQLite can add neither a foreign-key
    column nor drop one without rebuilding the job table, which would cascade into its children."""

    __tablename__ = "fused_group_job"
    __table_args__ = (sa.Index(None, "group_id", "job_id"),)

    job_id: Mapped[int] = mapped_column(
        BigIntegerKey, sa.ForeignKey("job.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    group_id: Mapped[int] = mapped_column(BigIntegerKey, sa.ForeignKey("fused_group.id", ondelete="CASCADE"))


class FusedCheckpoint(Base):
    """The latest resumable snapshot of a fused group (every model's state in one blob), overwritten."""

    __tablename__ = "fused_checkpoint"

    group_id: Mapped[int] = mapped_column(
        BigIntegerKey,
        sa.ForeignKey("fused_group.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    )
    step: Mapped[int]
    blob: Mapped[bytes] = mapped_column(sa.LargeBinary())
    saved_at: Mapped[datetime]


class DatasetBlob(Base):
    """An uploaded dataset's arrays as one NPZ file (`core.datasets.to_blob`), keyed by its SHA-256: kept in
    the database so every worker reads it where it reads its jobs, with no shared volume."""

    __tablename__ = "dataset_blob"

    sha256: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger())
    blob: Mapped[bytes] = mapped_column(sa.LargeBinary())


class UserDataset(Base):
    """A dataset's name (`"dataset": "user:<name>"` in a spec) and what it holds; several names may share a
    blob."""

    __tablename__ = "dataset"

    id: Mapped[int] = mapped_column(BigIntegerKey, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    sha256: Mapped[str] = mapped_column(sa.String(64), sa.ForeignKey("dataset_blob.sha256"))
    train_size: Mapped[int]
    val_size: Mapped[int]  # 0: no validation split was given; training holds out a seeded 20%
    input_shape: Mapped[list[Any]]
    num_classes: Mapped[int]
    created_at: Mapped[datetime]


class Worker(Base):
    """A worker process as it last reported itself: refreshed with its heartbeat, alive while `last_seen` is
    within the lease time and it has not stopped (`core.store.workers`)."""

    __tablename__ = "worker"
    __table_args__ = (sa.Index(None, "last_seen"),)

    id: Mapped[int] = mapped_column(BigIntegerKey, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(sa.String(PUBLIC_ID_LENGTH), unique=True)
    name: Mapped[str] = mapped_column(sa.String(NAME_LENGTH))  # Celery's node name, as its logs say it
    host: Mapped[str] = mapped_column(sa.String(NAME_LENGTH))
    pid: Mapped[int]
    queues: Mapped[list[Any]]
    device: Mapped[dict[str, Any]]
    training: Mapped[dict[str, Any] | None]
    started_at: Mapped[datetime]
    last_seen: Mapped[datetime]
    stopped_at: Mapped[datetime | None]


class IdempotentRequest(Base):
    """A POST sent with an `Idempotency-Key`: which body it carried (SHA-256 of its validated form) and the
    answer it got, so a retry within the window gets the same answer. The key is unique per route, so
    two concurrent requests with one key cannot both create; `status_code` is NULL while the first is
    being answered."""

    __tablename__ = "idempotent_request"
    __table_args__ = (sa.Index(None, "created_at"),)

    route: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(IDEMPOTENCY_KEY_LENGTH), primary_key=True)
    request_sha256: Mapped[str] = mapped_column(sa.String(64))
    status_code: Mapped[int | None]
    response: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]
