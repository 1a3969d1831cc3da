"""Housekeeping: tags, a note and an archived flag on jobs and sweeps.

Revision ID: 5d2e8a41c7f3
Revises: d7e3b2a9c6f1
Create Date: 2026-12-04 18:00:00

Columns with server defaults, so rows already stored read as untagged, without a note, not archived. Adding
and dropping a plain column never rebuilds the job table on SQLite (ALTER TABLE ... DROP COLUMN, SQLite
3.35+, rather than batch mode's copy-and-drop): dropping the old job table would cascade into its children
(telemetry, checkpoints, ...) under `PRAGMA foreign_keys=ON`.
Deleting a job or a sweep needs no schema change: the store deletes every row of it in one transaction.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "5d2e8a41c7f3"
down_revision: str | None = "d7e3b2a9c6f1"
branch_labels: str | None = None
depends_on: str | None = None

_TABLES = ("job", "sweep")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("tags", sa.Text(), nullable=False, server_default=""))
            batch.add_column(sa.Column("note", sa.Text(), nullable=False, server_default=""))
            batch.add_column(sa.Column("archived", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    is_sqlite = op.get_bind().dialect.name == "sqlite"
    for table in _TABLES:
        for column in ("archived", "note", "tags"):
            if is_sqlite:
                op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
            else:
                op.drop_column(table, column)
