"""The migrations: up, down and up again on both databases, they build exactly what the models say, and
the rollup migration fills the rollup from the metrics already stored."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from core.db.engine import create_database_engine
from core.db.migrate import alembic_config, downgrade_database, upgrade_database
from core.db.tables import Base
from core.results import MetricPoint
from core.store import Store
from core.store.jobs import queued_job_values
from tests.core.test_store import make_spec
from tests.core.test_store_series import _reference_downsample

SCHEMA_TABLES = {
    *("job", "sweep", "metric_name", "metric", "metric_rollup", "telemetry", "landscape", "checkpoint"),
    *("fused_group", "fused_group_job", "fused_checkpoint", "dataset", "dataset_blob", "worker"),
    "idempotent_request",
}
ROLLUP_REVISION = "ab00b6f69d79"


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


def test_the_rollup_migration_fills_the_rollup_from_metrics_already_stored(database_url: str) -> None:
    scripts = ScriptDirectory.from_config(alembic_config(database_url))
    before_rollup = scripts.get_revision(ROLLUP_REVISION).down_revision
    assert isinstance(before_rollup, str)
    upgrade_database(database_url, before_rollup)
    # The store of today writes columns later migrations add: the job row is written as SQL of that time.
    engine_before = create_database_engine(database_url)
    try:
        job_id = uuid.uuid4().hex
        steps = list(range(5, 3000, 3))
        values: list[float | None] = [math.sin(step / 100) for step in steps]
        values[100] = None  # stored NaN
        with engine_before.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO job (public_id, name, status, spec, created_at, attempts, lease_losses, "
                    "cancel_requested) VALUES (:id, '', 'succeeded', :spec, :now, 1, 0, false)"
                ),
                {"id": job_id, "spec": make_spec().model_dump_json(), "now": datetime.now(UTC)},
            )
            job_row_id = connection.scalar(
                sa.text("SELECT id FROM job WHERE public_id = :id"), {"id": job_id}
            )
            connection.execute(sa.text("INSERT INTO metric_name (name) VALUES ('val_loss')"))
            name_id = connection.scalar(sa.text("SELECT id FROM metric_name WHERE name = 'val_loss'"))
            connection.execute(
                sa.text(
                    "INSERT INTO metric (job_id, name_id, step, value) VALUES (:job, :name, :step, :value)"
                ),
                [
                    {"job": job_row_id, "name": name_id, "step": step, "value": value}
                    for step, value in zip(steps, values, strict=True)
                ],
            )
    finally:
        engine_before.dispose()

    upgrade_database(database_url)

    store = Store(database_url)
    try:
        for max_points in (40, 400, 4000):
            assert store.read_metrics(job_id, None, max_points) == {
                "val_loss": _reference_downsample(steps, values, max_points)
            }
        first_below = next(
            (step, value)
            for step, value in zip(steps, values, strict=True)
            if value is not None and value < -0.9
        )
        assert store.first_step_meeting(job_id, "val_loss", -0.9, higher_is_better=False) == first_below
        # Writing on top of the migrated rollup keeps it right.
        store.write_metrics(job_id, [MetricPoint("val_loss", 7, -5.0)])
        assert store.read_metrics(job_id, None, 40)["val_loss"][1][1] == -5.0
    finally:
        store.dispose()


def test_jobs_stored_before_the_telemetry_mode_keep_the_train_mode_they_probed_in(database_url: str) -> None:
    upgrade_database(database_url, "c4a1e5d9f273")
    # Inserted by hand: today's `Store.create_job` also writes columns of later revisions (tags, ...).
    values = queued_job_values(make_spec(telemetry_every=10))
    del values["spec"]["telemetry_mode"]  # as a job of before the field was stored
    columns = [sa.column(name) for name in (*values, "created_at") if name != "spec"]
    job_rows = sa.table("job", *columns, sa.column("spec", sa.JSON))
    engine = create_database_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(job_rows.insert().values(created_at=datetime.now(UTC), **values))
    finally:
        engine.dispose()

    upgrade_database(database_url)

    store = Store(database_url)
    try:
        migrated = store.get_job(values["public_id"])
        assert migrated is not None and migrated.spec["telemetry_mode"] == "train"
        assert store.create_job(make_spec(telemetry_every=10)).spec["telemetry_mode"] == "inference"
    finally:
        store.dispose()
