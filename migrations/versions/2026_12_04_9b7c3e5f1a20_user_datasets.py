"""User datasets: uploaded arrays kept by SHA-256 (`dataset_blob`) and the names that refer to them
(`dataset`).

Revision ID: 9b7c3e5f1a20
Revises: 5d2e8a41c7f3
Create Date: 2026-12-04 18:20:00

The blobs live in the database, like checkpoints: every worker that can read its jobs can read the data
they train on, with no shared volume to mount.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "9b7c3e5f1a20"
down_revision: str | None = "5d2e8a41c7f3"
branch_labels: str | None = None
depends_on: str | None = None

BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "dataset_blob",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_dataset_blob")),
    )
    op.create_table(
        "dataset",
        sa.Column("id", BIG_KEY, nullable=False, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column(
            "sha256",
            sa.String(64),
            sa.ForeignKey("dataset_blob.sha256", name=op.f("fk_dataset_sha256_dataset_blob")),
            nullable=False,
        ),
        sa.Column("train_size", sa.Integer(), nullable=False),
        sa.Column("val_size", sa.Integer(), nullable=False),
        sa.Column("input_shape", sa.JSON(), nullable=False),
        sa.Column("num_classes", sa.Integer(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset")),
        sa.UniqueConstraint("name", name=op.f("uq_dataset_name")),
    )


def downgrade() -> None:
    op.drop_table("dataset")
    op.drop_table("dataset_blob")
