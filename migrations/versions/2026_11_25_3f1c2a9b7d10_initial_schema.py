"""Initial schema: sweep, job, metric_name, metric, telemetry, landscape, checkpoint.

Revision ID: 3f1c2a9b7d10
Revises:
Create Date: 2026-11-25 14:00:00

Integer keys are BIGINT on PostgreSQL and INTEGER on SQLite (only `INTEGER PRIMARY KEY` auto-increments
there). Every constraint is named explicitly through `op.f()` so batch-mode downgrades on SQLite can find it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "3f1c2a9b7d10"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
SMALL_KEY = sa.SmallInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)
STATUSES = "status IN ('queued', 'running', 'succeeded', 'failed', 'diverged', 'cancelled')"
EXECUTIONS = "execution IN ('separate', 'fused')"


def _job_key(table: str) -> sa.Column[int]:
    """The owning job's row id (part of the table's primary key, declared by the caller)."""
    return sa.Column(
        "job_id",
        BIG_KEY,
        sa.ForeignKey("job.id", name=op.f(f"fk_{table}_job_id_job"), ondelete="CASCADE"),
        nullable=False,
        autoincrement=False,
    )


def _statistic(name: str) -> sa.Column[float]:
    return sa.Column(name, sa.Double(), nullable=True)


def upgrade() -> None:
    op.create_table(
        "sweep",
        sa.Column("id", BIG_KEY, nullable=False, autoincrement=True),
        sa.Column("public_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("base", sa.JSON(), nullable=False),
        sa.Column("grid", sa.JSON(), nullable=False),
        sa.Column("seeds", sa.JSON(), nullable=False),
        sa.Column("execution", sa.String(16), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sweep")),
        sa.UniqueConstraint("public_id", name=op.f("uq_sweep_public_id")),
        sa.CheckConstraint(EXECUTIONS, name=op.f("ck_sweep_execution_known")),
    )
    op.create_table(
        "job",
        sa.Column("id", BIG_KEY, nullable=False, autoincrement=True),
        sa.Column("public_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("enqueued_at", TIMESTAMP, nullable=True),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("progress_step", sa.Integer(), nullable=True),
        sa.Column("progress_steps", sa.Integer(), nullable=True),
        sa.Column("steps_per_second", sa.Double(), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.Column("device", sa.String(32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("heartbeat_at", TIMESTAMP, nullable=True),
        sa.Column("lease_losses", sa.Integer(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("sweep_id", BIG_KEY, sa.ForeignKey("sweep.id", name=op.f("fk_job_sweep_id_sweep"))),
        sa.Column("execution", sa.String(16), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job")),
        sa.UniqueConstraint("public_id", name=op.f("uq_job_public_id")),
        sa.CheckConstraint(STATUSES, name=op.f("ck_job_status_known")),
        sa.CheckConstraint(f"execution IS NULL OR {EXECUTIONS}", name=op.f("ck_job_execution_known")),
    )
    with op.batch_alter_table("job") as batch:
        batch.create_index(op.f("ix_job_status_job_id"), ["status", "id"])
        batch.create_index(op.f("ix_job_sweep_id_job_id"), ["sweep_id", "id"])
    op.create_table(
        "metric_name",
        sa.Column("id", SMALL_KEY, nullable=False, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metric_name")),
        sa.UniqueConstraint("name", name=op.f("uq_metric_name_name")),
    )
    # No foreign keys on the hottest table: a per-row check made batched ingestion 4x slower.
    op.create_table(
        "metric",
        sa.Column("job_id", BIG_KEY, nullable=False, autoincrement=False),
        sa.Column("name_id", SMALL_KEY, nullable=False, autoincrement=False),
        sa.Column("step", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("job_id", "name_id", "step", name=op.f("pk_metric")),
    )
    op.create_table(
        "telemetry",
        _job_key("telemetry"),
        sa.Column("step", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("layer", sa.Integer(), nullable=False, autoincrement=False),
        *(
            _statistic(name)
            for name in (
                "unit_p15",
                "unit_p50",
                "unit_p85",
                "p15",
                "p50",
                "p85",
                "mean",
                "std",
                "saturated_fraction",
                "grad_norm",
            )
        ),
        sa.PrimaryKeyConstraint("job_id", "step", "layer", name=op.f("pk_telemetry")),
    )
    op.create_table(
        "landscape",
        _job_key("landscape"),
        sa.Column("step", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("step_sizes", sa.JSON(), nullable=False),
        sa.Column("losses", sa.JSON(), nullable=False),
        *(
            _statistic(name)
            for name in (
                "loss_range",
                "gradient_predictiveness",
                "beta_smoothness",
                "grad_norm",
                "relative_gradient_change",
            )
        ),
        sa.PrimaryKeyConstraint("job_id", "step", name=op.f("pk_landscape")),
    )
    op.create_table(
        "checkpoint",
        _job_key("checkpoint"),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=False),
        sa.Column("saved_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_checkpoint")),
    )


def downgrade() -> None:
    op.drop_table("checkpoint")
    op.drop_table("landscape")
    op.drop_table("telemetry")
    op.drop_table("metric")
    op.drop_table("metric_name")
    with op.batch_alter_table("job") as batch:
        batch.drop_index(op.f("ix_job_sweep_id_job_id"))
        batch.drop_index(op.f("ix_job_status_job_id"))
    op.drop_table("job")
    op.drop_table("sweep")
