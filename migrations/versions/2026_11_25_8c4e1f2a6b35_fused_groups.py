"""Fused groups: which jobs of a sweep one task trains together, and each group's latest checkpoint.

Revision ID: 8c4e1f2a6b35
Revises: 3f1c2a9b7d10
Create Date: 2026-11-25 15:00:00

New tables only: a job's group is a row of `fused_group_job`, not a column of `job`, because SQLite can
neither add a foreign-key column to `job` nor drop it without rebuilding the table, and dropping the old
`job` table while foreign keys are enforced would delete its telemetry, landscape probes and checkpoints.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "8c4e1f2a6b35"
down_revision: str | None = "3f1c2a9b7d10"
branch_labels: str | None = None
depends_on: str | None = None

BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "fused_group",
        sa.Column("id", BIG_KEY, nullable=False, autoincrement=True),
        sa.Column("public_id", sa.String(32), nullable=False),
        sa.Column(
            "sweep_id",
            BIG_KEY,
            sa.ForeignKey("sweep.id", name=op.f("fk_fused_group_sweep_id_sweep")),
            nullable=False,
        ),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fused_group")),
        sa.UniqueConstraint("public_id", name=op.f("uq_fused_group_public_id")),
    )
    op.create_table(
        "fused_group_job",
        sa.Column(
            "job_id",
            BIG_KEY,
            sa.ForeignKey("job.id", name=op.f("fk_fused_group_job_job_id_job"), ondelete="CASCADE"),
            nullable=False,
            autoincrement=False,
        ),
        sa.Column(
            "group_id",
            BIG_KEY,
            sa.ForeignKey(
                "fused_group.id", name=op.f("fk_fused_group_job_group_id_fused_group"), ondelete="CASCADE"
            ),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_fused_group_job")),
    )
    with op.batch_alter_table("fused_group_job") as batch:
        batch.create_index(op.f("ix_fused_group_job_group_id_fused_group_job_job_id"), ["group_id", "job_id"])
    op.create_table(
        "fused_checkpoint",
        sa.Column(
            "group_id",
            BIG_KEY,
            sa.ForeignKey(
                "fused_group.id", name=op.f("fk_fused_checkpoint_group_id_fused_group"), ondelete="CASCADE"
            ),
            nullable=False,
            autoincrement=False,
        ),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=False),
        sa.Column("saved_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("group_id", name=op.f("pk_fused_checkpoint")),
    )


def downgrade() -> None:
    op.drop_table("fused_checkpoint")
    with op.batch_alter_table("fused_group_job") as batch:
        batch.drop_index(op.f("ix_fused_group_job_group_id_fused_group_job_job_id"))
    op.drop_table("fused_group_job")
    op.drop_table("fused_group")
