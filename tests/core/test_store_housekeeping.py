"""Housekeeping in the store, on SQLite and PostgreSQL: deleting a finished job or sweep leaves no row of
it in any table (checked in SQL), an unfinished one is refused; tags, notes and archiving, and the list
filters on them."""

from __future__ import annotations

import sqlalchemy as sa

from core.db.tables import Base
from core.results import LandscapeRecord, MetricPoint, TelemetryRecord
from core.store import Store
from tests.core.test_store import make_spec
from tests.core.test_store_fused_groups import fused_sweep

# The tables keyed by a job's row id (`job_id`).
JOB_KEYED = {"metric", "metric_rollup", "telemetry", "landscape", "checkpoint", "fused_group_job"}


def _record_everything(store: Store, job_id: str) -> None:
    """A job that trained: points in every per-job table, finished by its worker."""
    store.acquire_lease(job_id, "worker", lease_seconds=60)
    store.write_metrics(job_id, [MetricPoint("val_accuracy", step, step / 100) for step in range(0, 40, 10)])
    store.write_telemetry(job_id, [TelemetryRecord(10, 0, *([0.5] * 9), 0.1)])
    store.write_landscape(job_id, [LandscapeRecord(10, [0.1, 0.2], [1.0, 0.9], 0.1, 0.2, 3.0, 0.5, 0.4)])
    store.save_checkpoint(job_id, 30, b"state")
    assert store.finish_job(job_id, "worker", "succeeded")


def _row_counts(store: Store) -> dict[str, int]:
    with store.engine.connect() as connection:
        return {
            name: connection.scalar(sa.select(sa.func.count()).select_from(table)) or 0
            for name, table in Base.metadata.tables.items()
            if name != "metric_name"
        }


def _rows_of_job(store: Store, row_id: int) -> dict[str, int]:
    with store.engine.connect() as connection:
        return {
            name: connection.scalar(
                sa.text(f"SELECT count(*) FROM {name} WHERE job_id = :id"), {"id": row_id}
            )
            or 0
            for name in JOB_KEYED
        }


def _row_id(store: Store, job_id: str) -> int:
    with store.engine.connect() as connection:
        row_id = connection.scalar(sa.text("SELECT id FROM job WHERE public_id = :id"), {"id": job_id})
    assert isinstance(row_id, int)
    return row_id


def test_deleting_a_finished_job_leaves_no_row_of_it_and_keeps_the_others(store: Store) -> None:
    kept, deleted = store.create_job(make_spec()), store.create_job(make_spec())
    _record_everything(store, kept.id)
    _record_everything(store, deleted.id)
    before = _row_counts(store)
    deleted_row = _row_id(store, deleted.id)
    assert all(_rows_of_job(store, deleted_row).get(name) for name in JOB_KEYED - {"fused_group_job"})

    assert store.delete_job(deleted.id) == "deleted"

    assert _rows_of_job(store, deleted_row) == dict.fromkeys(JOB_KEYED, 0)
    assert store.get_job(deleted.id) is None
    after = _row_counts(store)
    assert after["job"] == before["job"] - 1
    assert _rows_of_job(store, _row_id(store, kept.id))["metric"] == 4
    assert store.read_metrics(kept.id, ["val_accuracy"])["val_accuracy"][0] == [0, 10, 20, 30]
    assert store.delete_job(deleted.id) == "not_found"


def test_an_unfinished_job_is_not_deleted(store: Store) -> None:
    queued = store.create_job(make_spec())
    running = store.create_job(make_spec())
    store.acquire_lease(running.id, "worker", lease_seconds=60)

    assert store.delete_job(queued.id) == "unfinished"
    assert store.delete_job(running.id) == "unfinished"
    assert store.get_job(queued.id) is not None and store.get_job(running.id) is not None


def test_deleting_a_fused_sweep_leaves_no_row_in_any_table(store: Store) -> None:
    sweep = fused_sweep(store, jobs=4, groups=[[0, 1], [2, 3]])
    store.acquire_group_lease(sweep.job_ids, "worker", lease_seconds=60)
    for group in sweep.fused_groups:
        store.save_group_checkpoint(group.id, 10, b"group state")
    for job_id in sweep.job_ids:
        store.write_metrics(job_id, [MetricPoint("train_loss", 0, 2.0)])
        store.save_checkpoint(job_id, 10, b"state")
        assert store.finish_job(job_id, "worker", "cancelled")
    running_sweep = fused_sweep(store, jobs=2)
    store.acquire_group_lease(running_sweep.job_ids, "worker", lease_seconds=60)

    assert store.delete_sweep(running_sweep.id) == "unfinished"
    assert store.delete_sweep(sweep.id) == "deleted"

    assert store.get_sweep(sweep.id) is None
    counts = _row_counts(store)
    assert counts == {
        **dict.fromkeys(counts, 0),
        "sweep": 1,
        "job": 2,
        "fused_group": 1,
        "fused_group_job": 2,
    }
    assert store.delete_sweep(sweep.id) == "not_found"


def test_tags_notes_and_archiving_filter_the_lists(store: Store) -> None:
    plain, tagged = store.create_job(make_spec()), store.create_job(make_spec())
    labelled = store.label_job(tagged.id, tags=["paper", "bn_on", "paper"], note="seed 0 baseline")
    assert labelled is not None
    assert (labelled.tags, labelled.note, labelled.archived) == (["paper", "bn_on"], "seed 0 baseline", False)
    sweep = fused_sweep(store, jobs=2)
    assert store.label_sweep(sweep.id, tags=["grid"], archived=True)
    assert not store.label_sweep("0" * 32, note="nobody")

    def listed(**filters: object) -> list[str]:
        return [job.id for job in store.list_jobs(**filters)[0]]  # type: ignore[arg-type]

    assert listed() == [tagged.id, plain.id]  # the archived sweep's jobs are left out
    assert listed(tag="paper") == [tagged.id]
    assert listed(tag="bn") == []  # a whole tag, never a part of one
    assert listed(tag="bn_on") == [tagged.id]
    assert set(listed(archived=True)) == set(sweep.job_ids)
    assert len(listed(archived=None)) == 4

    store.label_job(plain.id, archived=True)
    assert listed() == [tagged.id]
    assert store.label_job(tagged.id, tags=[]) is not None
    assert listed(tag="paper") == []
    assert [found.id for found in store.list_sweeps()[0]] == []
    assert [(found.id, found.tags) for found in store.list_sweeps(tag="grid", archived=True)[0]] == [
        (sweep.id, ["grid"])
    ]
