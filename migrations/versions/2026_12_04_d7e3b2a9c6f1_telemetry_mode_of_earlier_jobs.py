"""Telemetry mode of earlier jobs: the jobs stored before `telemetry_mode` existed probed in train mode.

Revision ID: d7e3b2a9c6f1
Revises: c4a1e5d9f273
Create Date: 2026-12-04 18:40:00

A spec without `telemetry_mode` now reads as `inference`, the default for new jobs; the jobs stored before
took their telemetry in train mode, so their specs say so explicitly (a job re-run from its stored spec, or
resumed, probes as it did). Data only; the downgrade leaves the key, which the code before this revision
reads.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "d7e3b2a9c6f1"
down_revision: str | None = "c4a1e5d9f273"
branch_labels: str | None = None
depends_on: str | None = None

JOB = sa.table("job", sa.column("id", sa.BigInteger()), sa.column("spec", sa.JSON()))


def upgrade() -> None:
    connection = op.get_bind()
    for row_id, spec in connection.execute(sa.select(JOB.c.id, JOB.c.spec)).all():
        if isinstance(spec, dict) and "telemetry_mode" not in spec:
            explicit = {**spec, "telemetry_mode": "train"}
            connection.execute(JOB.update().where(JOB.c.id == row_id).values(spec=explicit))


def downgrade() -> None:
    pass  # the key stays: see the module docstring
