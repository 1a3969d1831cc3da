"""Idempotent requests: the answer to each POST sent with an `Idempotency-Key`, for its retries.

Revision ID: 5d2e7c91a4f3
Revises: 5d2b9e7c41a8
Create Date: 2026-12-04 17:20:00

A new table only; its primary key (route, key) is what stops two concurrent requests with one key from
both creating.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "5d2e7c91a4f3"
down_revision: str | None = "5d2b9e7c41a8"
branch_labels: str | None = None
depends_on: str | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "idempotent_request",
        sa.Column("route", sa.String(32), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("request_sha256", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("route", "key", name=op.f("pk_idempotent_request")),
    )
    with op.batch_alter_table("idempotent_request") as batch:
        batch.create_index(op.f("ix_idempotent_request_created_at"), ["created_at"])


def downgrade() -> None:
    with op.batch_alter_table("idempotent_request") as batch:
        batch.drop_index(op.f("ix_idempotent_request_created_at"))
    op.drop_table("idempotent_request")
