"""Telemetry ICS: Santurkar et al.'s gradient-based measure per layer and step (‖G − G′‖₂, cos(G, G′)).

Revision ID: c4a1e5d9f273
Revises: 5d2e7c91a4f3
Create Date: 2026-12-04 18:30:00

Two nullable columns on telemetry; rows stored before have none (null).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "c4a1e5d9f273"
down_revision: str | None = "5d2e7c91a4f3"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("telemetry") as batch:
        batch.add_column(sa.Column("ics_gradient_change", sa.Double(), nullable=True))
        batch.add_column(sa.Column("ics_gradient_cosine", sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("telemetry") as batch:
        batch.drop_column("ics_gradient_cosine")
        batch.drop_column("ics_gradient_change")
