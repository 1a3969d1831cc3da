"""The migrations: up, down and up again on both databases, and they build exactly what the models say."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from core.db.engine import create_database_engine
from core.db.migrate import downgrade_database, upgrade_database
from core.db.tables import Base

SCHEMA_TABLES = {
    "job",
    "sweep",
    "metric_name",
    "metric",
    "metric_rollup",
    "telemetry",
    "landscape",
    "checkpoint",
}


def _tables(url: str) -> set[str]:
    engine = create_database_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    upgrade_database(database_url)
    assert _tables(database_url) == SCHEMA_TABLES | {"alembic_version"}

    downgrade_database(database_url)
    assert _tables(database_url) == {"alembic_version"}

    upgrade_database(database_url)
    assert _tables(database_url) == SCHEMA_TABLES | {"alembic_version"}


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    upgrade_database(database_url)
    engine = create_database_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_constraints_carry_the_naming_convention(database_url: str) -> None:
    upgrade_database(database_url)
    engine = create_database_engine(database_url)
    try:
        inspector = sa.inspect(engine)
        assert inspector.get_pk_constraint("metric")["name"] == "pk_metric"
        assert inspector.get_pk_constraint("metric")["constrained_columns"] == ["job_id", "name_id", "step"]
        assert [key["name"] for key in inspector.get_foreign_keys("telemetry")] == ["fk_telemetry_job_id_job"]
        assert {"ix_job_status_job_id", "ix_job_sweep_id_job_id"} <= {
            index["name"] for index in inspector.get_indexes("job")
        }
        assert [unique["name"] for unique in inspector.get_unique_constraints("job")] == ["uq_job_public_id"]
    finally:
        engine.dispose()
