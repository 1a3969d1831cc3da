"""One delivery of a job through `worker.training.train_job`, without Celery, on both databases.

Most tests run the real training core on tiny specs. Where a test needs a run that lasts until it is told
to stop (cancel, deadline, lost lease), a scripted stand-in for the core reports progress and polls
`should_stop` the way the core does.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import sqlalchemy

from core.db.migrate import upgrade_database
from core.results import Callbacks, MetricPoint, Progress, Result, Summary
from core.settings import Settings
from core.spec import JobSpec
from core.store import Store
from worker.delivery import TIME_LIMIT_EXCEEDED
from worker.training import train_job
from worker.training_core import train_with_core

METRICS = {"train_loss", "train_accuracy", "val_loss", "val_accuracy"}


def tiny_spec(**overrides: Any) -> JobSpec:
    fields: dict[str, Any] = {
        "architecture": {"kind": "mlp", "hidden": [16, 16], "activation": "sigmoid"},
        "batch_norm": True,
        "learning_rate": 0.5,
        "dropout": 0.0,
        "batch_size": 32,
        "steps": 100,
        "eval_every": 10,
        "telemetry_every": 25,
        "checkpoint_every": 50,
        "device": "cpu",
    }
    return JobSpec.model_validate(fields | overrides)


def liveness_settings(store: Store, **overrides: Any) -> Settings:
    fields: dict[str, Any] = {"heartbeat_seconds": 0.1, "lease_seconds": 3.0, "torch_threads": 1}
    return Settings(database_url=store.url, **(fields | overrides))


def test_a_job_trains_to_success_and_everything_is_stored(store: Store) -> None:
    spec = tiny_spec()
    job = store.create_job(spec)

    delivery = train_job(store, job.id, liveness_settings(store))

    assert (delivery.lease, delivery.status) == ("acquired", "succeeded")
    finished = store.get_job(job.id)
    assert finished is not None
    assert (finished.status, finished.device, finished.error, finished.attempts) == (
        "succeeded",
        "cpu",
        None,
        1,
    )
    assert finished.progress is not None and (finished.progress.step, finished.progress.steps) == (100, 100)
    assert finished.summary is not None and finished.summary.final_val_accuracy is not None
    series = store.read_metrics(job.id, None, 1000)
    assert set(series) == METRICS
    for steps, values in series.values():
        assert steps == list(range(10, 101, 10))
        assert all(value is not None for value in values)
    assert series["val_accuracy"][1][-1] == pytest.approx(finished.summary.final_val_accuracy)
    layers = store.read_telemetry(job.id)
    assert [layer.layer for layer in layers] == [0, 1]
    assert all(layer.steps == [25, 50, 75, 100] for layer in layers)


def test_an_exception_in_training_fails_the_job_with_its_message(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    job = store.create_job(tiny_spec(device="cuda"))  # this machine has no CUDA
    delivery = train_job(store, job.id, liveness_settings(store))
    failed = store.get_job(job.id)
    assert delivery.status == "failed"
    assert failed is not None and failed.status == "failed"
    assert failed.error is not None and "CUDA is not available" in failed.error
    # The worker's log says so (Celery's own line says the task "succeeded": it returned).
    said = [record for record in caplog.records if record.getMessage().startswith(f"job {job.id}: failed")]
    assert [record.levelname for record in said] == ["WARNING"]
    assert failed.error in said[0].getMessage()
    assert str(delivery) == f"job {job.id}: failed"


def name_with_nul_as_stored_by_an_older_version(store: Store, job_id: str) -> None:
    """Give the job a name with a NUL in its row and spec, as SQLite kept it before the API refused NUL."""
    assert not store.is_postgres, "PostgreSQL never stored NUL in text"
    with store._engine.begin() as connection:
        connection.execute(
            sqlalchemy.text(
                "UPDATE job SET name = :name, spec = json_set(spec, '$.name', :name) WHERE public_id = :id"
            ),
            {"name": "old\x00run", "id": job_id},
        )
    stored = store.get_job(job_id)
    assert stored is not None and stored.spec["name"] == "old\x00run"


def test_a_job_stored_with_a_nul_in_its_name_by_an_older_version_trains(sqlite_url: str) -> None:
    # Its name is no part of training: the job trains under the name the API shows for it (U+FFFD in
    # place of the NUL) instead of failing the spec's re-validation.
    upgrade_database(sqlite_url)
    store = Store(sqlite_url)
    try:
        job = store.create_job(tiny_spec(steps=20))
        name_with_nul_as_stored_by_an_older_version(store, job.id)

        delivery = train_job(store, job.id, liveness_settings(store))

        finished = store.get_job(job.id)
        assert finished is not None and (delivery.status, finished.status, finished.error) == (
            "succeeded",
            "succeeded",
            None,
        )
        assert store.read_metrics(job.id, None, 100)["val_accuracy"][0] == [10, 20]
    finally:
        store.dispose()


def test_a_delivery_of_a_job_leased_elsewhere_is_dropped(store: Store) -> None:
    job = store.create_job(tiny_spec())
    store.acquire_lease(job.id, "another-worker", lease_seconds=60)

    delivery = train_job(store, job.id, liveness_settings(store))

    assert (delivery.lease, delivery.status) == ("fresh_lease", None)
    untouched = store.get_job(job.id)
    assert untouched is not None and (untouched.lease_owner, untouched.attempts) == ("another-worker", 1)
    assert store.read_metrics(job.id, None, 1000) == {}


def test_a_finished_job_is_not_trained_again(store: Store) -> None:
    job = store.create_job(tiny_spec(steps=20))
    settings = liveness_settings(store)
    assert train_job(store, job.id, settings).status == "succeeded"
    again = train_job(store, job.id, settings)
    assert (again.lease, again.status) == ("finished", None)
    assert store.get_job(job.id).attempts == 1  # type: ignore[union-attr]


def train_until_stopped(
    spec: JobSpec, callbacks: Callbacks, _checkpoint: bytes | None, _settings: Settings
) -> Result:
    """Stands in for a long run: a step every 5 ms, a metric every 10 steps, until `should_stop`."""
    step = 0
    while not callbacks.should_stop():
        step += 1
        callbacks.on_progress(Progress(step, spec.steps))
        if step % 10 == 0:
            callbacks.on_metrics([MetricPoint("train_loss", step, 1.0 / step)])
        time.sleep(0.005)
    return Result("cancelled", step, Summary(), "cpu")


def test_a_cancel_request_stops_a_running_job_within_a_second(store: Store) -> None:
    job = store.create_job(tiny_spec())
    settings = liveness_settings(store, heartbeat_seconds=10.0)  # cancel is polled far more often
    outcome: dict[str, Any] = {}
    runner = threading.Thread(
        target=lambda: outcome.update(delivery=train_job(store, job.id, settings, train=train_until_stopped))
    )
    runner.start()
    _wait_for(lambda: (view := store.get_job(job.id)) is not None and view.progress is not None)

    requested_at = time.monotonic()
    store.request_cancel(job.id)
    runner.join(timeout=10)
    stopped_after = time.monotonic() - requested_at

    assert outcome["delivery"].status == "cancelled"
    assert stopped_after < 1.0
    cancelled = store.get_job(job.id)
    assert cancelled is not None and cancelled.status == "cancelled"
    steps, _ = store.read_metrics(job.id, ["train_loss"], 10_000)["train_loss"]
    assert steps and cancelled.progress is not None and steps[-1] <= cancelled.progress.step


def test_a_job_that_raises_keeps_the_metrics_it_reported(store: Store) -> None:
    def report_then_raise(
        spec: JobSpec, callbacks: Callbacks, _checkpoint: bytes | None, _settings: Settings
    ) -> Result:
        callbacks.on_metrics([MetricPoint("train_loss", 10, 0.5)])
        raise MemoryError("out of memory")

    job = store.create_job(tiny_spec())
    assert train_job(store, job.id, liveness_settings(store), train=report_then_raise).status == "failed"
    failed = store.get_job(job.id)
    assert failed is not None and failed.error == "MemoryError: out of memory"
    assert store.read_metrics(job.id, None, 100) == {"train_loss": ([10], [0.5])}


def test_a_job_past_its_deadline_fails_with_time_limit_exceeded(store: Store) -> None:
    job = store.create_job(tiny_spec())
    settings = liveness_settings(store, job_soft_time_limit_seconds=1)
    started = time.monotonic()
    delivery = train_job(store, job.id, settings, train=train_until_stopped)
    assert 1.0 <= time.monotonic() - started < 3.0
    failed = store.get_job(job.id)
    assert delivery.status == "failed"
    assert failed is not None and (failed.status, failed.error) == ("failed", TIME_LIMIT_EXCEEDED)


def test_a_worker_that_loses_its_lease_stops_and_writes_no_status(store: Store) -> None:
    job = store.create_job(tiny_spec())
    settings = liveness_settings(store, heartbeat_seconds=0.1)
    outcome: dict[str, Any] = {}
    runner = threading.Thread(
        target=lambda: outcome.update(delivery=train_job(store, job.id, settings, train=train_until_stopped))
    )
    runner.start()
    _wait_for(lambda: (view := store.get_job(job.id)) is not None and view.progress is not None)

    assert store.acquire_lease(job.id, "new-owner", lease_seconds=0).outcome == "taken_over"
    runner.join(timeout=10)

    assert not runner.is_alive() and outcome["delivery"].status is None
    still_running = store.get_job(job.id)
    assert still_running is not None
    assert (still_running.status, still_running.lease_owner) == ("running", "new-owner")


class SimulatedCrash(BaseException):
    """Ends a delivery the way a killed worker does: nothing after it runs, the lease goes stale."""


def test_a_crashed_job_resumes_from_its_checkpoint_with_the_uninterrupted_metrics(store: Store) -> None:
    spec = tiny_spec(steps=120, checkpoint_every=40)
    settings = liveness_settings(store, lease_seconds=0.3)
    reference = store.create_job(spec)
    assert train_job(store, reference.id, settings).status == "succeeded"

    def crash_after_second_checkpoint(
        spec: JobSpec, callbacks: Callbacks, checkpoint: bytes | None, settings: Settings
    ) -> Result:
        save = callbacks.on_checkpoint

        def save_then_crash(step: int, blob: bytes) -> None:
            save(step, blob)
            if step == 80:
                raise SimulatedCrash

        callbacks.on_checkpoint = save_then_crash
        return train_with_core(spec, callbacks, checkpoint, settings)

    job = store.create_job(spec)
    with pytest.raises(SimulatedCrash):
        train_job(store, job.id, settings, train=crash_after_second_checkpoint)
    assert store.load_checkpoint(job.id) is not None
    time.sleep(0.4)  # the dead worker's lease goes stale

    first_steps: list[int] = []

    def record_where_it_starts(
        spec: JobSpec, callbacks: Callbacks, checkpoint: bytes | None, settings: Settings
    ) -> Result:
        report = callbacks.on_progress
        callbacks.on_progress = lambda progress: (first_steps.append(progress.step), report(progress))[1]
        return train_with_core(spec, callbacks, checkpoint, settings)

    resumed = train_job(store, job.id, settings, train=record_where_it_starts)

    assert (resumed.lease, resumed.status) == ("taken_over", "succeeded")
    assert first_steps[0] == 80  # resumed from the checkpoint, not from step 0
    finished = store.get_job(job.id)
    assert finished is not None and (finished.attempts, finished.lease_losses) == (2, 1)
    assert store.read_metrics(job.id, None, 1000) == store.read_metrics(reference.id, None, 1000)


def _wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
