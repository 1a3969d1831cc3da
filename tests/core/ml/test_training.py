"""The training loop, as a caller sees it: what it reports, when, and how a run ends.

Runs are tiny (two hidden layers of 32 on digits, at most 200 steps) except the stop-request test, which
asks for many steps precisely so that only the stop can end it.
"""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from core.ml import run
from core.results import Callbacks, MetricPoint, Progress, Result, TelemetryRecord
from core.settings import Settings
from core.spec import MAX_STEPS
from tests.core.ml.helpers import make_spec, replay_losses

REPOSITORY = Path(__file__).resolve().parents[3]


class Recorder:
    """Callbacks that keep everything they are given."""

    def __init__(self) -> None:
        self.progress: list[Progress] = []
        self.metrics: list[MetricPoint] = []
        self.telemetry: list[TelemetryRecord] = []
        self.checkpoints: dict[int, bytes] = {}

    def callbacks(self) -> Callbacks:
        return Callbacks(
            on_progress=self.progress.append,
            on_metrics=self.metrics.extend,
            on_telemetry=self.telemetry.extend,
            on_checkpoint=self.checkpoints.__setitem__,
        )

    def series(self, name: str) -> dict[int, float]:
        return {point.step: point.value for point in self.metrics if point.name == name}


def recorded_run(**changes: object) -> tuple[Result, Recorder]:
    recorder = Recorder()
    result = run(make_spec(**changes), recorder.callbacks(), settings=Settings())
    return result, recorder


def test_metrics_at_every_evaluation_and_the_last_step() -> None:
    result, recorder = recorded_run(steps=50, eval_every=20)
    assert result.outcome == "succeeded" and result.steps_completed == 50 and result.device == "cpu"
    for name in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        assert sorted(recorder.series(name)) == [20, 40, 50]
    for name in ("train_accuracy", "val_accuracy"):
        assert all(0 <= value <= 1 for value in recorder.series(name).values())
    steps = [progress.step for progress in recorder.progress]
    assert steps[0] == 0 and steps[-1] == 50 and steps == sorted(steps)
    assert all(progress.steps == 50 for progress in recorder.progress)
    assert recorder.progress[-1].steps_per_second is not None and recorder.progress[-1].steps_per_second > 0


def test_reported_figures_are_what_training_computed() -> None:
    """train_loss at an evaluation is the mean loss of the updates since the previous one."""
    spec = make_spec(steps=50, eval_every=20)
    recorder = Recorder()
    result = run(spec, recorder.callbacks(), settings=Settings())
    losses = replay_losses(spec, Settings(), 50)
    train_loss = recorder.series("train_loss")
    for step, since in [(20, 0), (40, 20), (50, 40)]:
        assert train_loss[step] == pytest.approx(sum(losses[since:step]) / (step - since), rel=1e-5)
    summary = result.summary
    val_accuracy = recorder.series("val_accuracy")
    assert summary.final_train_loss == train_loss[50]
    assert summary.final_val_loss == recorder.series("val_loss")[50]
    assert summary.final_val_accuracy == val_accuracy[50]
    assert summary.best_val_accuracy == max(val_accuracy.values())


def test_learning_happens() -> None:
    _, recorder = recorded_run(steps=100, eval_every=100, optimizer="adam", learning_rate=0.01)
    assert recorder.series("val_accuracy")[100] > 0.85  # chance is 0.1
    assert recorder.series("train_loss")[100] < math.log(10)  # the loss of a uniform guess


def test_same_spec_same_metrics_other_seed_other_metrics() -> None:
    changes = {"steps": 40, "eval_every": 10, "dropout": 0.3}
    _, first = recorded_run(**changes)
    _, second = recorded_run(**changes)
    _, other_seed = recorded_run(**changes, seed=1)
    assert first.metrics == second.metrics
    assert first.series("train_loss") != other_seed.series("train_loss")


def test_steps_to_target_is_the_first_evaluation_at_the_target() -> None:
    result, recorder = recorded_run(steps=120, eval_every=10, target_accuracy=0.5)
    val_accuracy = recorder.series("val_accuracy")
    expected = min(step for step, value in val_accuracy.items() if value >= 0.5)
    assert result.summary.steps_to_target == expected
    assert result.summary.seconds_to_target is not None and result.summary.seconds_to_target > 0

    unreachable, _ = recorded_run(steps=20, eval_every=10, target_accuracy=1.0)
    assert unreachable.summary.steps_to_target is None and unreachable.summary.seconds_to_target is None


def test_seconds_to_target_is_the_training_time_until_then() -> None:
    """Timed like a caller would: from the step-0 report to the report of the step that hit the target."""
    reported_at: dict[int, float] = {}

    def note(progress: Progress) -> None:
        reported_at[progress.step] = time.perf_counter()

    callbacks = Callbacks(on_progress=note)
    spec = make_spec(steps=200, eval_every=5, checkpoint_every=5, target_accuracy=0.85)
    result = run(spec, callbacks, settings=Settings())
    steps_to_target, seconds_to_target = result.summary.steps_to_target, result.summary.seconds_to_target
    assert steps_to_target is not None and seconds_to_target is not None
    assert 0 < seconds_to_target <= reported_at[steps_to_target] - reported_at[0]


def test_divergence_is_a_result_at_the_first_non_finite_loss() -> None:
    changes = {
        "architecture": {"kind": "mlp", "hidden": [64, 64], "activation": "relu"},
        "batch_norm": False,
        "learning_rate": 100.0,
        "steps": 200,
        "eval_every": 10,
    }
    result, recorder = recorded_run(**changes)
    losses = replay_losses(make_spec(**changes), Settings(), 200)
    first_non_finite = next(step for step, loss in enumerate(losses, start=1) if not math.isfinite(loss))

    assert result.outcome == "diverged"
    assert result.summary.diverged_at_step == first_non_finite
    assert result.steps_completed == first_non_finite
    assert all(point.step < first_non_finite for point in recorder.metrics)
    assert all(math.isfinite(point.value) for point in recorder.metrics)


def test_stop_request_is_honoured_within_a_second() -> None:
    polled_at: list[float] = []
    stop_at: list[float] = []

    def should_stop() -> bool:
        polled_at.append(time.monotonic())
        if not stop_at and recorder.progress and recorder.progress[-1].step > 0:
            stop_at.append(polled_at[-1] + 1.5)  # long enough for the loop to settle into its rhythm
        return bool(stop_at) and polled_at[-1] >= stop_at[0]

    recorder = Recorder()
    callbacks = recorder.callbacks()
    callbacks.should_stop = should_stop
    result = run(make_spec(steps=MAX_STEPS, eval_every=MAX_STEPS), callbacks, settings=Settings())
    returned_at = time.monotonic()

    assert result.outcome == "cancelled"
    assert 0 < result.steps_completed < MAX_STEPS
    assert returned_at - stop_at[0] < 1.0
    assert max(later - earlier for earlier, later in itertools.pairwise(polled_at)) < 0.5


def test_telemetry_one_record_per_hidden_layer_per_interval() -> None:
    result, recorder = recorded_run(steps=60, eval_every=20, telemetry_every=15)
    assert result.outcome == "succeeded"
    assert sorted((record.step, record.layer) for record in recorder.telemetry) == [
        (step, layer) for step in (15, 30, 45, 60) for layer in (0, 1)
    ]
    for record in recorder.telemetry:
        assert record.unit_p15 <= record.unit_p50 <= record.unit_p85
        assert record.p15 <= record.p50 <= record.p85
        assert record.std > 0
        assert record.saturated_fraction is not None and 0 <= record.saturated_fraction <= 1
        assert math.isfinite(record.grad_norm) and record.grad_norm > 0


def test_telemetry_of_a_cnn_and_relu_which_does_not_saturate() -> None:
    _, recorder = recorded_run(
        architecture={"kind": "cnn", "channels": [4, 8], "activation": "relu"}, steps=20, telemetry_every=10
    )
    assert sorted((record.step, record.layer) for record in recorder.telemetry) == [
        (10, 0),
        (10, 1),
        (20, 0),
        (20, 1),
    ]
    assert all(record.saturated_fraction is None for record in recorder.telemetry)
    assert all(record.p15 <= record.p50 <= record.p85 for record in recorder.telemetry)


def test_telemetry_does_not_change_the_run() -> None:
    changes = {"steps": 40, "eval_every": 10, "dropout": 0.2}
    _, without = recorded_run(**changes)
    _, with_telemetry = recorded_run(**changes, telemetry_every=5)
    assert with_telemetry.telemetry and with_telemetry.metrics == without.metrics


def test_saturation_shows_without_batch_norm() -> None:
    """The paper's point: without BN a sigmoid net's inputs drift into saturation; BN keeps them centred."""
    changes = {
        "architecture": {"kind": "mlp", "hidden": [32, 32], "activation": "sigmoid"},
        "init": "gaussian",
        "init_std": 1.0,  # wide weights: pre-activations far from zero
        "steps": 20,
        "telemetry_every": 20,
    }
    _, plain = recorded_run(**changes, batch_norm=False)
    _, normalized = recorded_run(**changes, batch_norm=True)
    plain_saturation = max(record.saturated_fraction or 0.0 for record in plain.telemetry)
    normalized_saturation = max(record.saturated_fraction or 0.0 for record in normalized.telemetry)
    assert plain_saturation > 0.2 > normalized_saturation


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_resume_from_checkpoint_ends_exactly_like_an_uninterrupted_run(optimizer: str) -> None:
    # eval_every does not divide checkpoint_every, so a checkpoint falls inside an evaluation window;
    # dropout makes the global generator matter; the optimizer has state of its own.
    changes = {
        "steps": 100,
        "eval_every": 20,
        "checkpoint_every": 30,
        "dropout": 0.2,
        "optimizer": optimizer,
        "learning_rate": 0.05 if optimizer == "momentum" else 0.005,
        "target_accuracy": 0.6,
    }
    uninterrupted, full = recorded_run(**changes)
    assert sorted(full.checkpoints) == [30, 60, 90]

    resumed_recorder = Recorder()
    resumed = run(make_spec(**changes), resumed_recorder.callbacks(), full.checkpoints[30], Settings())

    assert resumed.outcome == "succeeded" and resumed.steps_completed == 100
    assert resumed_recorder.progress[0].step == 30
    assert resumed_recorder.metrics == [point for point in full.metrics if point.step > 30]
    for field in ("final_val_accuracy", "best_val_accuracy", "final_train_loss", "final_val_loss"):
        assert getattr(resumed.summary, field) == getattr(uninterrupted.summary, field), field
    assert resumed.summary.steps_to_target == uninterrupted.summary.steps_to_target
    assert sorted(resumed_recorder.checkpoints) == [60, 90]


def test_checkpoint_of_another_spec_is_refused() -> None:
    _, recorder = recorded_run(steps=40, checkpoint_every=20)
    with pytest.raises(ValueError, match="different spec"):
        run(make_spec(steps=40, checkpoint_every=20, learning_rate=0.2), checkpoint=recorder.checkpoints[20])


def test_paper_batch_norm_trains_like_torch_batch_norm() -> None:
    _, with_torch = recorded_run(steps=20, eval_every=10, bn_implementation="torch")
    _, with_bnlab = recorded_run(steps=20, eval_every=10, bn_implementation="bnlab")
    for name in ("train_loss", "val_loss", "val_accuracy"):
        for step, value in with_torch.series(name).items():
            assert with_bnlab.series(name)[step] == pytest.approx(value, abs=1e-4)


def test_spirals_are_learnable() -> None:
    _, recorder = recorded_run(
        dataset="spirals",
        architecture={"kind": "mlp", "hidden": [64, 64], "activation": "relu"},
        optimizer="adam",
        learning_rate=0.01,
        batch_size=64,
        steps=200,
        eval_every=200,
    )
    assert recorder.series("val_accuracy")[200] > 0.8


def test_missing_cuda_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="cuda:99"):
        run(make_spec(device="cuda:99"))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            run(make_spec(device="cuda"))


def test_auto_device_trains_where_it_can() -> None:
    result, _ = recorded_run(steps=10, eval_every=10, device="auto")
    assert result.device == ("cuda:0" if torch.cuda.is_available() else "cpu")


def test_importing_the_core_does_not_initialize_cuda() -> None:
    code = "import core.ml, torch; print(torch.cuda.is_initialized())"
    output = subprocess.run(
        [sys.executable, "-c", code], cwd=REPOSITORY, capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "False"


@pytest.mark.slow
def test_paper_claim_batch_norm_reaches_90_percent_in_a_few_hundred_steps_and_without_it_never() -> None:
    """Ioffe & Szegedy's Fig. 1(a) on digits: 3x100 sigmoid, default init, SGD 0.1, batch 60, 2000 steps."""
    paper_setup = {
        "architecture": {"kind": "mlp", "hidden": [100, 100, 100], "activation": "sigmoid"},
        "learning_rate": 0.1,
        "optimizer": "sgd",
        "init": "default",
        "batch_size": 60,
        "steps": 2000,
        "eval_every": 10,
        "target_accuracy": 0.9,
        "seed": 0,
    }
    with_bn, _ = recorded_run(**paper_setup, batch_norm=True)
    without_bn, _ = recorded_run(**paper_setup, batch_norm=False)
    assert with_bn.summary.steps_to_target is not None and with_bn.summary.steps_to_target <= 300
    assert with_bn.summary.final_val_accuracy is not None and with_bn.summary.final_val_accuracy > 0.95
    assert without_bn.summary.steps_to_target is None
    assert without_bn.summary.best_val_accuracy is not None and without_bn.summary.best_val_accuracy < 0.9
