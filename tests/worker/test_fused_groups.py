"""One delivery of a fused group through `worker.fused_groups.train_group`, without Celery, on both databases.

The group trains with the real fused trainer on tiny specs; each job is checked against the same spec run
as a separate job through `worker.training.train_job` (the stored series must agree) or against an
uninterrupted run of the same group.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy

from core.db.migrate import upgrade_database
from core.results import (
    Callbacks,
    GroupCheckpointHook,
    MetricPoint,
    ModelResultHook,
    Progress,
    Result,
    SyncPointHook,
)
from core.settings import Settings
from core.spec import JobSpec
from core.store import MetricSeries, Store, SweepView
from tests.worker.test_training import (
    METRICS,
    SimulatedCrash,
    liveness_settings,
    name_with_nul_as_stored_by_an_older_version,
    tiny_spec,
)
from worker import group_reporting
from worker.delivery import TIME_LIMIT_EXCEEDED
from worker.fused_groups import train_group
from worker.training import train_job
from worker.training_core import TrainGroupFunction, train_group_with_core

VAL_LOSS_TOLERANCE = 1e-4  # fused and separate runs of one spec round differently, nothing more


def fusable_specs(**overrides: Any) -> list[JobSpec]:
    """Three jobs one group can train: learning rate, init and seed differ, the shapes and schedule not."""
    return [
        tiny_spec(learning_rate=0.5, seed=0, **overrides),
        tiny_spec(learning_rate=0.1, seed=1, **overrides),
        tiny_spec(learning_rate=1.0, seed=2, init="xavier", **overrides),
    ]


def fused_sweep(store: Store, specs: list[JobSpec]) -> SweepView:
    """A sweep whose jobs are one fused group (the group is the sweep's only one)."""
    indices = list(range(len(specs)))
    return store.create_sweep("fused", specs[0], {}, indices, "fused", specs, [indices])


def separate_runs(store: Store, specs: list[JobSpec], settings: Settings) -> list[str]:
    """Each spec trained as a separate job, as a `separate` sweep runs them; their job ids."""
    jobs = [store.create_job(spec) for spec in specs]
    assert [train_job(store, job.id, settings).status for job in jobs] == ["succeeded"] * len(jobs)
    return [job.id for job in jobs]


def core_with_progress_watchers(watchers: dict[int, Callable[[Progress], None]]) -> TrainGroupFunction:
    """The real fused training, with `watchers[i]` told of job i's every progress report once reported."""

    def watched(
        report: Callable[[Progress], None], watch: Callable[[Progress], None]
    ) -> Callable[[Progress], None]:
        def report_and_watch(progress: Progress) -> None:
            report(progress)
            watch(progress)

        return report_and_watch

    def train(specs: list[JobSpec], callbacks: list[Callbacks], *rest: Any) -> list[Result]:
        for index, watch in watchers.items():
            callbacks[index].on_progress = watched(callbacks[index].on_progress, watch)
        return train_group_with_core(specs, callbacks, *rest)

    return train


def core_crashing_after_checkpoint(step: int, report_model_results: bool = True) -> TrainGroupFunction:
    """The real fused training, which dies (SimulatedCrash) right after saving its checkpoint at `step`;
    without `report_model_results` it finishes no job before the group ends, as workers before
    `on_model_result` did."""

    def train(
        specs: list[JobSpec],
        callbacks: list[Callbacks],
        checkpoint: bytes | None,
        settings: Settings,
        on_group_checkpoint: GroupCheckpointHook,
        on_model_result: ModelResultHook,
        on_sync_point: SyncPointHook,
    ) -> list[Result]:
        def save_then_crash(saved_at: int, blob: bytes) -> None:
            on_group_checkpoint(saved_at, blob)
            if saved_at == step:
                raise SimulatedCrash

        reported = on_model_result if report_model_results else lambda *_: None
        return train_group_with_core(
            specs, callbacks, checkpoint, settings, save_then_crash, reported, on_sync_point
        )

    return train


def assert_same_series(fused: MetricSeries, separate: MetricSeries) -> None:
    assert set(fused) == set(separate) == METRICS
    for name, (steps, values) in fused.items():
        separate_steps, separate_values = separate[name]
        assert steps == separate_steps
        tolerance = VAL_LOSS_TOLERANCE if name == "val_loss" else 1e-3
        assert values == pytest.approx(separate_values, abs=tolerance), name


def test_each_job_of_a_group_ends_as_its_separate_run_would(store: Store) -> None:
    specs = fusable_specs()
    settings = liveness_settings(store)
    [group] = fused_sweep(store, specs).fused_groups

    deliveries = train_group(store, group.job_ids, settings)

    assert [(delivery.lease, delivery.status) for delivery in deliveries] == [("acquired", "succeeded")] * 3
    for job_id, separate_id in zip(group.job_ids, separate_runs(store, specs, settings), strict=True):
        job, separate = store.get_job(job_id), store.get_job(separate_id)
        assert job is not None and separate is not None
        assert (job.status, job.device, job.attempts, job.error) == ("succeeded", "cpu", 1, None)
        assert job.progress is not None and (job.progress.step, job.progress.steps) == (100, 100)
        assert job.summary is not None and separate.summary is not None
        assert job.summary.final_val_accuracy == pytest.approx(separate.summary.final_val_accuracy, abs=1e-3)
        assert job.summary.final_val_loss == pytest.approx(separate.summary.final_val_loss, abs=1e-4)
        assert_same_series(
            store.read_metrics(job_id, None, 1000), store.read_metrics(separate_id, None, 1000)
        )
        layers = store.read_telemetry(job_id)
        assert [layer.steps for layer in layers] == [[25, 50, 75, 100]] * 2
    checkpoint = store.load_group_checkpoint(group.id)
    assert checkpoint is not None and checkpoint[0] == 50  # every 50 steps, none at the last one


def test_a_second_delivery_of_a_training_group_is_dropped(store: Store) -> None:
    [group] = fused_sweep(store, fusable_specs()).fused_groups
    store.acquire_group_lease(group.job_ids, "another-worker", lease_seconds=60)

    deliveries = train_group(store, group.job_ids, liveness_settings(store))

    assert {(delivery.lease, delivery.status) for delivery in deliveries} == {("fresh_lease", None)}
    assert all(store.read_metrics(job_id, None, 100) == {} for job_id in group.job_ids)


def test_cancelling_one_job_stops_only_its_model(store: Store) -> None:
    specs = fusable_specs(steps=400, eval_every=20, telemetry_every=0, checkpoint_every=0)
    settings = liveness_settings(store)  # the group's cancel flags are read every 0.1 s
    [group] = fused_sweep(store, specs).fused_groups
    cancelled_id, other_id, _ = group.job_ids
    cancelled_at: list[int] = []
    seen_after_the_cancel: list[tuple[str, bool, str]] = []

    def cancel_past_step_100(progress: Progress) -> None:
        """The user cancels the first job once it is past step 100 (and the group's keeper has seen it)."""
        if progress.step >= 100 and not cancelled_at:
            store.request_cancel(cancelled_id)
            time.sleep(0.5)
            cancelled_at.append(progress.step)

    def look_after_the_cancel(progress: Progress) -> None:
        if cancelled_at and progress.step > cancelled_at[0] and not seen_after_the_cancel:
            cancelled_job, other_job = store.get_job(cancelled_id), store.get_job(other_id)
            assert cancelled_job is not None and other_job is not None
            seen_after_the_cancel.append(
                (cancelled_job.status, cancelled_job.summary is not None, other_job.status)
            )

    cancel_and_look = core_with_progress_watchers({0: cancel_past_step_100, 1: look_after_the_cancel})
    deliveries = train_group(store, group.job_ids, settings, train=cancel_and_look)

    assert [delivery.status for delivery in deliveries] == ["cancelled", "succeeded", "succeeded"]
    # Finished, summary included, while the others trained on.
    assert seen_after_the_cancel == [("cancelled", True, "running")]
    cancelled = store.get_job(cancelled_id)
    assert cancelled is not None and cancelled.progress is not None
    assert cancelled.progress.step == cancelled_at[0]
    assert cancelled.summary is not None and cancelled.device == "cpu"
    steps, _ = store.read_metrics(cancelled_id, ["val_loss"], 1000)["val_loss"]
    assert steps == list(range(20, cancelled_at[0] + 1, 20))
    for job_id, separate_id in zip(group.job_ids[1:], separate_runs(store, specs[1:], settings), strict=True):
        assert_same_series(
            store.read_metrics(job_id, None, 1000), store.read_metrics(separate_id, None, 1000)
        )


def one_diverging_among_three(steps: int, checkpoint_every: int) -> list[JobSpec]:
    """Three fusable relu nets without BN; the second (a rate of 100) overflows within a few dozen steps."""
    shape = {
        "architecture": {"kind": "mlp", "hidden": [64, 64], "activation": "relu"},
        "batch_norm": False,
        "steps": steps,
        "telemetry_every": 0,
        "checkpoint_every": checkpoint_every,
    }
    return [
        tiny_spec(**shape, learning_rate=0.1, seed=0),
        tiny_spec(**shape, learning_rate=100.0, seed=1),
        tiny_spec(**shape, learning_rate=0.05, seed=2),
    ]


def test_a_job_that_diverges_is_finished_at_once_while_the_others_train_on(store: Store) -> None:
    specs = one_diverging_among_three(steps=200, checkpoint_every=0)
    [group] = fused_sweep(store, specs).fused_groups
    diverged_id = group.job_ids[1]
    seen_once_it_ended: list[tuple[int, str, int | None, list[str]]] = []

    def look_until_it_ended(progress: Progress) -> None:
        """At each progress report of the first job, look at the store until the diverging job has ended."""
        diverged_job = store.get_job(diverged_id)
        assert diverged_job is not None
        if diverged_job.status != "running" and not seen_once_it_ended:
            diverged_at_step = diverged_job.summary.diverged_at_step if diverged_job.summary else None
            others = [store.get_job(job_id) for job_id in (group.job_ids[0], group.job_ids[2])]
            statuses = [job.status for job in others if job]
            seen_once_it_ended.append((progress.step, diverged_job.status, diverged_at_step, statuses))

    look_while_training = core_with_progress_watchers({0: look_until_it_ended})
    deliveries = train_group(store, group.job_ids, liveness_settings(store), train=look_while_training)

    assert [delivery.status for delivery in deliveries] == ["succeeded", "diverged", "succeeded"]
    [(seen_at_step, seen_status, seen_diverged_at_step, others_then)] = seen_once_it_ended
    # Diverged, with its summary, while the group was still training the others.
    assert (seen_status, others_then) == ("diverged", ["running", "running"])
    assert seen_diverged_at_step is not None and seen_diverged_at_step <= seen_at_step < 200
    diverged = store.get_job(diverged_id)
    assert diverged is not None and diverged.summary is not None and diverged.progress is not None
    assert diverged.summary.diverged_at_step == diverged.progress.step == seen_diverged_at_step
    assert diverged.device == "cpu"
    steps, _ = store.read_metrics(diverged_id, ["val_loss"], 1000)["val_loss"]
    assert steps == list(range(10, diverged.summary.diverged_at_step, 10))


def test_a_crashed_group_resumes_from_its_checkpoint_with_the_uninterrupted_metrics(store: Store) -> None:
    specs = fusable_specs(steps=120, checkpoint_every=40)
    settings = liveness_settings(store, lease_seconds=0.3)
    [reference] = fused_sweep(store, specs).fused_groups
    assert {delivery.status for delivery in train_group(store, reference.job_ids, settings)} == {"succeeded"}

    crash_after_second_checkpoint = core_crashing_after_checkpoint(80)
    [group] = fused_sweep(store, specs).fused_groups
    with pytest.raises(SimulatedCrash):
        train_group(store, group.job_ids, settings, train=crash_after_second_checkpoint)
    checkpoint = store.load_group_checkpoint(group.id)
    assert checkpoint is not None and checkpoint[0] == 80
    time.sleep(0.4)  # the dead worker's leases go stale

    first_steps: list[int] = []

    record_where_it_starts = core_with_progress_watchers(
        {0: lambda progress: first_steps.append(progress.step)}
    )
    resumed = train_group(store, group.job_ids, settings, train=record_where_it_starts)

    assert {(delivery.lease, delivery.status) for delivery in resumed} == {("taken_over", "succeeded")}
    assert first_steps[0] == 80  # resumed from the group's checkpoint, not from step 0
    for job_id, reference_id in zip(group.job_ids, reference.job_ids, strict=True):
        job = store.get_job(job_id)
        assert job is not None and (job.attempts, job.lease_losses) == (2, 1)
        assert store.read_metrics(job_id, None, 1000) == store.read_metrics(reference_id, None, 1000)


def test_a_job_whose_model_ended_in_a_checkpoint_older_than_on_model_result_is_finished_on_resume(
    store: Store,
) -> None:
    specs = one_diverging_among_three(steps=120, checkpoint_every=40)
    settings = liveness_settings(store, lease_seconds=0.3)
    [group] = fused_sweep(store, specs).fused_groups
    diverged_id = group.job_ids[1]

    # The worker of an older version: nothing is finished before the group ends; it dies after the
    # checkpoint at step 80, which holds the diverged model's result.
    as_before_on_model_result_then_crash = core_crashing_after_checkpoint(80, report_model_results=False)
    with pytest.raises(SimulatedCrash):
        train_group(store, group.job_ids, settings, train=as_before_on_model_result_then_crash)
    left_running = store.get_job(diverged_id)
    assert left_running is not None and left_running.status == "running"  # diverged, never finished
    time.sleep(0.4)  # the dead worker's leases go stale

    resumed = train_group(store, group.job_ids, settings)

    assert [delivery.status for delivery in resumed] == ["succeeded", "diverged", "succeeded"]
    diverged = store.get_job(diverged_id)
    assert diverged is not None and (diverged.status, diverged.error) == ("diverged", None)
    assert diverged.summary is not None and diverged.summary.diverged_at_step is not None
    assert diverged.summary.diverged_at_step < 80
    assert diverged.progress is not None and diverged.progress.step == diverged.summary.diverged_at_step
    finished_at = diverged.finished_at

    # Delivered once more (the message came back): every job stays as it ended.
    time.sleep(0.4)
    again = train_group(store, group.job_ids, settings)
    assert {(delivery.lease, delivery.status) for delivery in again} == {("finished", None)}
    unchanged = store.get_job(diverged_id)
    assert unchanged is not None and (unchanged.status, unchanged.finished_at) == ("diverged", finished_at)


def statements_per_sync_point(store: Store, models: int) -> list[int]:
    """The SQL statements a delivered group of `models` jobs makes from its training thread between one sync
    point and the next (the next one's writes included), each sync point writing what it has."""
    specs = [
        tiny_spec(
            learning_rate=0.1 * (1 + index),
            seed=index,
            steps=60,
            telemetry_every=20,
            landscape_every=30,
            checkpoint_every=0,
        )
        for index in range(models)
    ]
    [group] = fused_sweep(store, specs).fused_groups
    training_thread = threading.get_ident()
    counts: list[int] = []

    def count(*_: Any) -> None:
        if counts and threading.get_ident() == training_thread:
            counts[-1] += 1

    def train(*arguments: Any) -> list[Result]:
        *rest, on_sync_point = arguments

        def counted(step: int) -> None:
            on_sync_point(step)
            counts.append(0)  # what follows belongs to the next sync point

        return train_group_with_core(*rest, counted)

    sqlalchemy.event.listen(store.engine, "before_cursor_execute", count)
    try:
        deliveries = train_group(store, group.job_ids, liveness_settings(store), train=train)
    finally:
        sqlalchemy.event.remove(store.engine, "before_cursor_execute", count)
    assert {delivery.status for delivery in deliveries} == {"succeeded"}
    return counts[:-1]  # the last: the jobs finishing, one by one as their events say


def test_a_group_stores_each_sync_point_in_as_many_statements_however_many_jobs_it_has(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group_reporting, "FLUSH_EVERY_SECONDS", 0.0)  # every sync point writes
    monkeypatch.setattr(group_reporting, "PROGRESS_EVERY_SECONDS", 0.0)
    # The metric names are interned once, by a store's first write of them.
    store.write_metrics(store.create_job(tiny_spec()).id, [MetricPoint(name, 0, 0.0) for name in METRICS])

    two, eight = statements_per_sync_point(store, 2), statements_per_sync_point(store, 8)

    assert min(two) == min(eight) > 0  # progress alone
    assert max(two) == max(eight)  # metrics, telemetry, landscape and progress of every job together


def test_a_group_with_a_job_stored_with_a_nul_in_its_name_trains_every_job(sqlite_url: str) -> None:
    upgrade_database(sqlite_url)
    store = Store(sqlite_url)
    try:
        sweep = fused_sweep(store, fusable_specs(steps=20)[:2])
        name_with_nul_as_stored_by_an_older_version(store, sweep.job_ids[1])

        deliveries = train_group(store, sweep.job_ids, liveness_settings(store))

        # Before, the one name failed the whole group's spec validation, and so every job of the group.
        assert [delivery.status for delivery in deliveries] == ["succeeded", "succeeded"]
        finished = store.get_job(sweep.job_ids[1])
        assert finished is not None and finished.error is None and finished.summary is not None
    finally:
        store.dispose()


def test_a_group_that_cannot_train_fails_every_job_with_the_message(store: Store) -> None:
    [group] = fused_sweep(store, fusable_specs(device="cuda")).fused_groups  # this machine has no CUDA

    deliveries = train_group(store, group.job_ids, liveness_settings(store))

    assert {delivery.status for delivery in deliveries} == {"failed"}
    for job_id in group.job_ids:
        job = store.get_job(job_id)
        assert job is not None and job.error is not None and "CUDA is not available" in job.error


def test_a_group_past_its_deadline_fails_every_job_with_time_limit_exceeded(store: Store) -> None:
    specs = fusable_specs(steps=100_000, eval_every=1000, telemetry_every=0, checkpoint_every=0)
    [group] = fused_sweep(store, specs).fused_groups
    started = time.monotonic()

    deliveries = train_group(store, group.job_ids, liveness_settings(store, job_soft_time_limit_seconds=1))

    assert 1.0 <= time.monotonic() - started < 5.0
    assert {delivery.status for delivery in deliveries} == {"failed"}
    jobs = [store.get_job(job_id) for job_id in group.job_ids]
    assert {(job.status, job.error) for job in jobs if job} == {("failed", TIME_LIMIT_EXCEEDED)}


def _wait_for(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
