"""Workers: each worker process's row in the registry (host, queues, device, what it trains, last seen).

Revision ID: 5d2b9e7c41a8
Revises: ab00b6f69d79
Create Date: 2026-12-04 17:00:00

A new table only; nothing else changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "5d2b9e7c41a8"
down_revision: str | None = "ab00b6f69d79"
branch_labels: str | None = None
depends_on: str | None = None

BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "worker",
        sa.Column("id", BIG_KEY, nullable=False, autoincrement=True),
        sa.Column("public_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("queues", sa.JSON(), nullable=False),
        sa.Column("device", sa.JSON(), nullable=False),
        sa.Column("training", sa.JSON(), nullable=True),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("last_seen", TIMESTAMP, nullable=False),
        sa.Column("stopped_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker")),
        sa.UniqueConstraint("public_id", name=op.f("uq_worker_public_id")),
    )
    with op.batch_alter_table("worker") as batch:
        batch.create_index(op.f("ix_worker_last_seen"), ["last_seen"])


def downgrade() -> None:
    with op.batch_alter_table("worker") as batch:
        batch.drop_index(op.f("ix_worker_last_seen"))
    op.drop_table("worker")
