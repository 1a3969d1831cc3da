"""Metric rollup: per series, one row per block of 16 steps (count, first, last, lowest, highest point),
filled from the metrics already stored.

Revision ID: ab00b6f69d79
Revises: 8c4e1f2a6b35
Create Date: 2026-11-25 16:00:00

Downsampled reads of long series combine these blocks instead of scanning every point. The store keeps
the table up to date on every batch write; this migration builds it for what is already there. The block
width (16 steps) is `core.db.tables.ROLLUP_BLOCK_STEPS` at the time of writing. PostgreSQL also keeps each
block's points inline as arrays; SQLite has no arrays and leaves those columns NULL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "ab00b6f69d79"
down_revision: str | None = "8c4e1f2a6b35"
branch_labels: str | None = None
depends_on: str | None = None

BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
SMALL_KEY = sa.SmallInteger().with_variant(sa.Integer(), "sqlite")

# Earliest step on ties, extremes over finite (non-NULL) values only: the downsampling's own rule.
_FILL_POSTGRESQL = """
INSERT INTO metric_rollup (job_id, name_id, block, points, first_step, first_value, last_step, last_value,
                           lowest_step, lowest_value, highest_step, highest_value, point_steps, point_values)
SELECT job_id, name_id, block, points, first[1]::integer, first[2], last[1]::integer, last[2],
       lowest[2]::integer, lowest[1], (-highest[2])::integer, highest[1], point_steps, point_values
FROM (
    SELECT job_id, name_id, step / 16 AS block, count(*) AS points,
           min(ARRAY[step::double precision, value]) AS first,
           max(ARRAY[step::double precision, value]) AS last,
           min(ARRAY[value, step::double precision]) FILTER (WHERE value IS NOT NULL) AS lowest,
           max(ARRAY[value, -step::double precision]) FILTER (WHERE value IS NOT NULL) AS highest,
           array_agg(step ORDER BY step) AS point_steps,
           array_agg(value ORDER BY step) AS point_values
    FROM metric
    GROUP BY job_id, name_id, step / 16
) AS blocks
"""

_FILL_SQLITE = """
INSERT INTO metric_rollup (job_id, name_id, block, points, first_step, first_value, last_step, last_value,
                           lowest_step, lowest_value, highest_step, highest_value)
SELECT job_id, name_id, block, count(*),
       max(CASE WHEN from_first = 1 THEN step END), max(CASE WHEN from_first = 1 THEN value END),
       max(CASE WHEN from_last = 1 THEN step END), max(CASE WHEN from_last = 1 THEN value END),
       max(CASE WHEN from_lowest = 1 AND value IS NOT NULL THEN step END),
       max(CASE WHEN from_lowest = 1 THEN value END),
       max(CASE WHEN from_highest = 1 AND value IS NOT NULL THEN step END),
       max(CASE WHEN from_highest = 1 THEN value END)
FROM (
    SELECT job_id, name_id, step / 16 AS block, step, value,
           row_number() OVER (PARTITION BY job_id, name_id, step / 16 ORDER BY step) AS from_first,
           row_number() OVER (PARTITION BY job_id, name_id, step / 16 ORDER BY step DESC) AS from_last,
           row_number() OVER (PARTITION BY job_id, name_id, step / 16
                              ORDER BY value IS NULL, value, step) AS from_lowest,
           row_number() OVER (PARTITION BY job_id, name_id, step / 16
                              ORDER BY value IS NULL, value DESC, step) AS from_highest
    FROM metric
) AS ranked
GROUP BY job_id, name_id, block
"""


def upgrade() -> None:
    is_postgres = op.get_bind().dialect.name == "postgresql"
    # No foreign keys, like `metric`: the store is the only writer and checks the ids itself.
    op.create_table(
        "metric_rollup",
        sa.Column("job_id", BIG_KEY, nullable=False, autoincrement=False),
        sa.Column("name_id", SMALL_KEY, nullable=False, autoincrement=False),
        sa.Column("block", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("first_step", sa.Integer(), nullable=False),
        sa.Column("first_value", sa.Double(), nullable=True),
        sa.Column("last_step", sa.Integer(), nullable=False),
        sa.Column("last_value", sa.Double(), nullable=True),
        sa.Column("lowest_step", sa.Integer(), nullable=True),
        sa.Column("lowest_value", sa.Double(), nullable=True),
        sa.Column("highest_step", sa.Integer(), nullable=True),
        sa.Column("highest_value", sa.Double(), nullable=True),
        sa.Column(
            "point_steps", postgresql.ARRAY(sa.Integer()).with_variant(sa.JSON(), "sqlite"), nullable=True
        ),
        sa.Column(
            "point_values", postgresql.ARRAY(sa.Double()).with_variant(sa.JSON(), "sqlite"), nullable=True
        ),
        sa.PrimaryKeyConstraint("job_id", "name_id", "block", name=op.f("pk_metric_rollup")),
    )
    op.execute(_FILL_POSTGRESQL if is_postgres else _FILL_SQLITE)


def downgrade() -> None:
    op.drop_table("metric_rollup")
