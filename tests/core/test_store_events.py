"""The store's reads behind job event streams, on SQLite and PostgreSQL: the lifecycle derived from the
job row, and metric points grouped by step past a cursor."""

from __future__ import annotations

import math

from core.results import MetricPoint, Summary
from core.spec import JobSpec
from core.store import Store

NAMES = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")


def make_spec() -> JobSpec:
    return JobSpec.model_validate(
        {
            "architecture": {"kind": "mlp", "hidden": [8]},
            "batch_norm": True,
            "learning_rate": 0.1,
            "dropout": 0.0,
            "steps": 30,
            "eval_every": 10,
        }
    )


def evaluation(step: int) -> list[MetricPoint]:
    """Four distinct values per step, so a value in the wrong step or name shows."""
    return [MetricPoint(name, step, step + index / 10) for index, name in enumerate(NAMES)]


def history(store: Store, job_id: str) -> list[tuple[int, str]]:
    state = store.job_event_states([job_id])[job_id]
    return [(change.seq, change.status) for change in state.status_history()]


def test_the_lifecycle_follows_the_job_row(store: Store) -> None:
    job = store.create_job(make_spec())
    assert history(store, job.id) == [(1, "queued")]

    store.acquire_lease(job.id, "worker-a", lease_seconds=60)
    assert history(store, job.id) == [(1, "queued"), (2, "running")]

    store.set_progress(job.id, 30, 30, 123.0)
    summary = Summary(final_val_accuracy=0.5, best_val_accuracy=0.75)
    assert store.finish_job(job.id, "worker-a", "succeeded", summary=summary, device="cpu")
    state = store.job_event_states([job.id])[job.id]
    assert [(change.seq, change.status) for change in state.status_history()] == [
        (1, "queued"),
        (2, "running"),
        (3, "succeeded"),
    ]
    changes = state.status_history()
    assert changes[0].at == job.created_at
    assert changes[0].at is not None and changes[2].at is not None and changes[0].at <= changes[2].at
    assert state.progress is not None and (state.progress.step, state.progress.steps) == (30, 30)
    assert state.summary is not None and state.summary.best_val_accuracy == 0.75


def test_a_job_cancelled_before_it_started_never_ran(store: Store) -> None:
    job = store.create_job(make_spec())
    store.request_cancel(job.id)
    assert history(store, job.id) == [(1, "queued"), (2, "cancelled")]


def test_several_jobs_are_read_at_once_and_unknown_ones_are_left_out(store: Store) -> None:
    first, second = store.create_job(make_spec()), store.create_job(make_spec())
    states = store.job_event_states([first.id, second.id, "0" * 32])
    assert set(states) == {first.id, second.id}
    assert store.job_event_states([]) == {}


def test_metric_steps_come_grouped_in_step_order_after_the_cursor(store: Store) -> None:
    job = store.create_job(make_spec())
    store.acquire_lease(job.id, "worker-a", lease_seconds=60)
    for step in (20, 0, 10):  # written out of order: read back in order
        store.write_metrics(job.id, evaluation(step))

    everything = store.metric_steps_after(job.id, -1)
    assert [point.step for point in everything] == [0, 10, 20]
    for point in everything:
        expected = {point.name: point.value for point in evaluation(point.step)}
        assert point.values == expected

    assert [point.step for point in store.metric_steps_after(job.id, 0)] == [10, 20]
    assert store.metric_steps_after(job.id, 20) == []


def test_a_bounded_read_returns_whole_steps_and_continues_from_the_last(store: Store) -> None:
    job = store.create_job(make_spec())
    store.acquire_lease(job.id, "worker-a", lease_seconds=60)
    store.write_metrics(job.id, [point for step in range(0, 50, 10) for point in evaluation(step)])

    first = store.metric_steps_after(job.id, -1, max_steps=2)
    assert [point.step for point in first] == [0, 10]
    assert all(len(point.values) == len(NAMES) for point in first)
    rest = store.metric_steps_after(job.id, first[-1].step, max_steps=2)
    assert [point.step for point in rest] == [20, 30]


def test_a_value_that_was_not_finite_reads_as_none(store: Store) -> None:
    job = store.create_job(make_spec())
    store.acquire_lease(job.id, "worker-a", lease_seconds=60)
    store.write_metrics(job.id, [MetricPoint("train_loss", 10, math.nan), MetricPoint("val_loss", 10, 1.5)])
    assert store.metric_steps_after(job.id, -1)[0].values == {"train_loss": None, "val_loss": 1.5}
