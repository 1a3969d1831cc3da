"""The store's job and sweep side, on SQLite and PostgreSQL: creation, listing, pagination, cancel."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy

from core.spec import JobSpec
from core.store import InvalidCursor, JobExecution, Store
from core.store.jobs import MARK_ENQUEUED_BATCH


def make_spec(**overrides: Any) -> JobSpec:
    fields: dict[str, Any] = {
        "architecture": {"kind": "mlp", "hidden": [8]},
        "batch_norm": True,
        "learning_rate": 0.1,
        "dropout": 0.0,
        "steps": 20,
        "eval_every": 10,
    }
    return JobSpec.model_validate(fields | overrides)


def test_a_created_job_is_queued_and_unpublished_until_marked(store: Store) -> None:
    spec = make_spec(name="bn-sigmoid", device="cpu")
    job = store.create_job(spec)

    assert len(job.id) == 32 and int(job.id, 16) >= 0
    assert (job.status, job.name, job.attempts, job.enqueued_at, job.progress) == (
        "queued",
        "bn-sigmoid",
        0,
        None,
        None,
    )
    assert job.job_spec() == spec
    assert job.created_at.tzinfo is not None

    store.mark_enqueued(job.id)
    published = store.get_job(job.id)
    assert published is not None and published.enqueued_at is not None
    assert published.enqueued_at >= job.created_at


def test_a_job_a_worker_took_before_its_publication_was_recorded_still_gets_its_publication_time(
    store: Store,
) -> None:
    job = store.create_job(make_spec())
    store.acquire_lease(job.id, "fast-worker", lease_seconds=60)
    store.mark_enqueued(job.id)
    running = store.get_job(job.id)
    assert running is not None and running.status == "running" and running.enqueued_at is not None


def test_an_unknown_job_is_none(store: Store) -> None:
    assert store.get_job("0" * 32) is None
    assert store.get_job("not a job id") is None
    assert store.request_cancel("0" * 32) is None


def test_jobs_are_listed_newest_first_page_by_page(store: Store) -> None:
    created = [store.create_job(make_spec(name=f"job {index}")).id for index in range(5)]

    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page, cursor = store.list_jobs(limit=2, cursor=cursor)
        pages.append([job.id for job in page])
        if cursor is None:
            break

    newest_first = created[::-1]
    assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:5]]


def test_a_full_last_page_has_no_next_cursor(store: Store) -> None:
    for _ in range(2):
        store.create_job(make_spec())
    page, cursor = store.list_jobs(limit=2)
    assert len(page) == 2 and cursor is None


def test_listing_filters_by_status_and_sweep(store: Store) -> None:
    queued = store.create_job(make_spec())
    cancelled = store.create_job(make_spec())
    store.request_cancel(cancelled.id)
    sweep = store.create_sweep(
        "lr", make_spec(), {"learning_rate": [0.1, 1.0]}, [0], "separate", [make_spec(), make_spec()]
    )

    by_status, _ = store.list_jobs(status="cancelled")
    assert [job.id for job in by_status] == [cancelled.id]
    queued_ids = {job.id for job in store.list_jobs(status="queued")[0]}
    assert queued_ids == {queued.id, *sweep.job_ids}
    in_sweep, _ = store.list_jobs(sweep_id=sweep.id)
    assert [job.id for job in in_sweep] == sweep.job_ids[::-1]
    assert store.list_jobs(sweep_id="0" * 32) == ([], None)


def test_a_cursor_not_handed_out_is_rejected(store: Store) -> None:
    for cursor in ("not-a-cursor", "", "cjE6eHl6"):
        with pytest.raises(InvalidCursor):
            store.list_jobs(cursor=cursor)


def test_cancelling_a_queued_job_cancels_it_at_once(store: Store) -> None:
    job = store.create_job(make_spec())
    cancelled = store.request_cancel(job.id)
    assert cancelled is not None
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    assert store.acquire_lease(job.id, "worker-a", lease_seconds=60).outcome == "finished"


def test_cancelling_a_running_job_asks_its_worker(store: Store) -> None:
    job = store.create_job(make_spec())
    store.acquire_lease(job.id, "worker-a", lease_seconds=60)
    assert not store.is_cancel_requested(job.id)

    requested = store.request_cancel(job.id)
    assert requested is not None
    assert (requested.status, requested.cancel_requested) == ("running", True)
    assert store.is_cancel_requested(job.id)


def test_cancelling_a_finished_job_changes_nothing(store: Store) -> None:
    job = store.create_job(make_spec())
    store.acquire_lease(job.id, "worker-a", lease_seconds=60)
    assert store.finish_job(job.id, "worker-a", "succeeded", device="cpu")
    before = store.get_job(job.id)

    after = store.request_cancel(job.id)
    assert after == before
    assert after is not None and (after.status, after.cancel_requested) == ("succeeded", False)


def test_a_sweep_and_its_jobs_are_created_together(store: Store) -> None:
    base = make_spec(name="base")
    specs = [make_spec(learning_rate=rate, seed=seed) for rate in (0.1, 1.0) for seed in (0, 1)]
    sweep = store.create_sweep(
        "lr x seed", base, {"learning_rate": [0.1, 1.0]}, [0, 1], "fused", specs, fused_groups=[[0, 2]]
    )

    assert (sweep.name, sweep.size, sweep.execution, sweep.seeds) == ("lr x seed", 4, "fused", [0, 1])
    assert sweep.grid == {"learning_rate": [0.1, 1.0]}
    assert JobSpec.model_validate(sweep.base) == base
    jobs = store.sweep_jobs(sweep.id)
    assert [job.id for job in jobs] == sweep.job_ids
    assert [job.job_spec() for job in jobs] == specs
    assert {(job.status, job.sweep_id) for job in jobs} == {("queued", sweep.id)}
    [group] = sweep.fused_groups
    assert (group.size, group.job_ids) == (2, [jobs[0].id, jobs[2].id])
    assert [(job.execution, job.fused_group) for job in jobs] == [
        ("fused", group.id),
        ("separate", None),
        ("fused", group.id),
        ("separate", None),
    ]
    in_group, alone = JobExecution("fused", group.id, 2), JobExecution("separate")
    assert [job.execution_details for job in jobs] == [in_group, alone, in_group, alone]
    assert sweep.job_statuses == dict.fromkeys(sweep.job_ids, "queued")
    assert store.get_sweep(sweep.id) == sweep
    assert store.get_sweep("0" * 32) is None


def test_a_sweep_with_an_unknown_execution_is_refused_and_leaves_nothing(store: Store) -> None:
    with pytest.raises(ValueError, match="execution"):
        store.create_sweep("bad", make_spec(), {}, [0], "parallel", [make_spec()])
    assert store.list_sweeps() == ([], None)
    assert store.list_jobs() == ([], None)


@pytest.mark.parametrize("fused_groups", [[[0]], [[0, 1], [1, 2]], [[0, 3]]])
def test_fused_groups_of_fewer_than_two_or_of_unknown_or_shared_jobs_are_refused(
    store: Store, fused_groups: list[list[int]]
) -> None:
    specs = [make_spec(seed=seed) for seed in range(3)]
    with pytest.raises(ValueError, match="fused group"):
        store.create_sweep("bad", make_spec(), {}, [0, 1, 2], "fused", specs, fused_groups)
    assert store.list_sweeps() == ([], None)


def test_sweeps_are_listed_newest_first_page_by_page(store: Store) -> None:
    created = [store.create_sweep(f"s{index}", make_spec(), {}, [0], "separate", []).id for index in range(3)]
    first, cursor = store.list_sweeps(limit=2)
    assert cursor is not None
    second, last = store.list_sweeps(limit=2, cursor=cursor)
    assert [sweep.id for sweep in first + second] == created[::-1]
    assert last is None


def test_the_jobs_of_a_fused_group_are_marked_enqueued_together(store: Store) -> None:
    jobs = [store.create_job(make_spec()) for _ in range(MARK_ENQUEUED_BATCH + 3)]
    untouched = store.create_job(make_spec())
    statements: list[str] = []

    def record(*arguments: Any) -> None:  # (connection, cursor, statement, parameters, ...)
        statements.append(arguments[2])

    sqlalchemy.event.listen(store.engine, "before_cursor_execute", record)
    try:
        store.mark_enqueued(*(job.id for job in jobs))
    finally:
        sqlalchemy.event.remove(store.engine, "before_cursor_execute", record)
    updates = [statement for statement in statements if "UPDATE" in statement.upper()]
    assert len(updates) == 2  # a statement per MARK_ENQUEUED_BATCH jobs, not one per job
    views = store.get_jobs([job.id for job in [*jobs, untouched]])
    assert all(views[job.id].enqueued_at is not None for job in jobs)
    assert views[untouched.id].enqueued_at is None
