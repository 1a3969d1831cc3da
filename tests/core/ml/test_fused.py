"""Fused training, as the jobs of a group see it: each model reports what its separate run would.

Nets are small (two hidden layers of 32 or 64 on digits); the runs that are compared with separate ones
take 500 steps, the rest at most 200.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from core.ml import run, stack_evaluation
from core.ml.cpu_exactness import REPAIR_FROM_MODELS
from core.ml.fused import run_fused
from core.ml.fused_model import StackedMLP
from core.ml.nets import build_model
from core.ml.stack_evaluation import EVAL_BATCH_SIZE
from core.results import Callbacks, LandscapeRecord, MetricPoint, Progress, Result, TelemetryRecord
from core.settings import Settings
from core.spec import JobSpec
from tests.core.ml.helpers import make_spec

LEARNING_RATES = {"sgd": (0.05, 0.2, 0.5), "momentum": (0.01, 0.05, 0.1), "adam": (0.001, 0.003, 0.01)}
DIVERGING = {  # relu without BN at a rate of 100 overflows within a few dozen steps
    "architecture": {"kind": "mlp", "hidden": [64, 64], "activation": "relu"},
    "batch_norm": False,
}


class Recorder:
    """Callbacks that keep everything one job is told."""

    def __init__(self, stop_after_step: int | None = None) -> None:
        self.progress: list[Progress] = []
        self.metrics: list[MetricPoint] = []
        self.telemetry: list[TelemetryRecord] = []
        self.landscape: list[LandscapeRecord] = []
        self.checkpoints: dict[int, bytes] = {}
        self.stop_after_step = stop_after_step

    def callbacks(self) -> Callbacks:
        return Callbacks(
            on_progress=self.progress.append,
            on_metrics=self.metrics.extend,
            on_telemetry=self.telemetry.extend,
            on_landscape=self.landscape.extend,
            on_checkpoint=self.checkpoints.__setitem__,
            should_stop=self.should_stop,
        )

    def should_stop(self) -> bool:
        last_step = self.metrics[-1].step if self.metrics else 0
        return self.stop_after_step is not None and last_step >= self.stop_after_step

    def series(self, name: str) -> dict[int, float]:
        return {point.step: point.value for point in self.metrics if point.name == name}


def separately(specs: list[JobSpec]) -> tuple[list[Result], list[Recorder]]:
    recorders = [Recorder() for _ in specs]
    results = [
        run(spec, recorder.callbacks(), settings=Settings())
        for spec, recorder in zip(specs, recorders, strict=True)
    ]
    return results, recorders


def fused(
    specs: list[JobSpec], recorders: list[Recorder] | None = None, **options: Any
) -> tuple[list[Result], list[Recorder]]:
    recorders = recorders if recorders is not None else [Recorder() for _ in specs]
    results = run_fused(
        specs, [recorder.callbacks() for recorder in recorders], settings=Settings(), **options
    )
    return results, recorders


def assert_same_metrics(alone: Recorder, together: Recorder, tolerance: float) -> None:
    for name in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        expected, actual = alone.series(name), together.series(name)
        assert sorted(actual) == sorted(expected), name
        for step, value in expected.items():
            assert actual[step] == pytest.approx(value, abs=tolerance), (name, step)


@pytest.mark.parametrize("batch_norm", [True, False], ids=["bn", "no-bn"])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_each_fused_model_follows_its_separate_run(optimizer: str, batch_norm: bool) -> None:
    """Different rates, seeds, inits and BN settings in one group; 500 steps; val loss within 1e-4."""
    low, middle, high = LEARNING_RATES[optimizer]
    common = {"optimizer": optimizer, "batch_norm": batch_norm, "steps": 500, "eval_every": 100}
    specs = [
        make_spec(**common, learning_rate=low, seed=0, target_accuracy=0.5),
        make_spec(**common, learning_rate=middle, seed=1, init="he", bn_momentum=0.2),
        make_spec(**common, learning_rate=high, seed=2, init="xavier", bn_eps=1e-3, target_accuracy=0.8),
    ]
    alone_results, alone = separately(specs)
    together_results, together = fused(specs)

    for expected, actual, alone_recorder, together_recorder in zip(
        alone_results, together_results, alone, together, strict=True
    ):
        assert actual.outcome == expected.outcome == "succeeded"
        assert actual.steps_completed == 500 and actual.device == "cpu"
        assert together_recorder.series("val_accuracy") == alone_recorder.series("val_accuracy")
        assert together_recorder.series("train_accuracy") == alone_recorder.series("train_accuracy")
        assert_same_metrics(alone_recorder, together_recorder, tolerance=1e-4)
        assert actual.summary.steps_to_target == expected.summary.steps_to_target
        assert actual.summary.best_val_accuracy == expected.summary.best_val_accuracy
        assert actual.summary.final_val_loss == pytest.approx(expected.summary.final_val_loss, abs=1e-4)
    # The rates were meant to make a difference: the models are not one model three times.
    assert len({recorder.series("val_loss")[500] for recorder in together}) == 3


@pytest.mark.parametrize("models", [3, REPAIR_FROM_MODELS + 1], ids=["by-model", "repaired"])
@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_fused_models_compute_their_separate_runs_to_the_bit_at_widths_off_the_vector_width(
    activation: str, models: int
) -> None:
    """The paper's layers are 100 wide: not a multiple of the CPU's vector width, so ATen's loops treat a
    layer's last few units one by one (sigmoid, batch norm's backward pass), rounding them apart from the
    rest. Adam turns a one-ulp difference into 1e-4 within a few hundred steps; a fused model still
    computes every value as its separate run does — in a small group by BN backward calls per model, in
    a larger one by one call per run of equal eps and the batched repair (`core.ml.cpu_exactness`)."""
    common = {
        "architecture": {"kind": "mlp", "hidden": [100, 20], "activation": activation},
        "optimizer": "adam",
        "batch_size": 60,
        "steps": 300,
        "eval_every": 100,
    }
    specs = [  # by threes: rates 0.001, 0.01, 0.003, the third with another BN eps (another run)
        make_spec(
            **common,
            learning_rate=(0.001, 0.01, 0.003)[index % 3],
            seed=index // 3 + (index % 3 == 1),
            bn_eps=1e-3 if index % 3 == 2 else 1e-5,
        )
        for index in range(models)
    ]
    alone_results, alone = separately(specs)
    together_results, together = fused(specs)
    for expected, actual, alone_recorder, together_recorder in zip(
        alone_results, together_results, alone, together, strict=True
    ):
        for name in ("val_loss", "val_accuracy", "train_accuracy"):
            assert together_recorder.series(name) == alone_recorder.series(name), name
        assert actual.summary.final_val_loss == expected.summary.final_val_loss
        # train_loss is each step's mean, summed over the models' losses in another order: to rounding.
        assert_same_metrics(alone_recorder, together_recorder, tolerance=1e-6)


def test_a_group_too_large_for_one_evaluation_pass_is_evaluated_a_few_models_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Evaluation keeps a separate run's chunks of held-out rows (another chunk length would round a
    100-wide sigmoid's tail differently) and bounds its memory by taking fewer models per pass."""
    features = 64  # digits
    monkeypatch.setattr(stack_evaluation, "MAX_EVAL_VALUES", EVAL_BATCH_SIZE * features)  # a model a pass
    common = {
        "architecture": {"kind": "mlp", "hidden": [100], "activation": "sigmoid"},
        "steps": 40,
        "eval_every": 20,
    }
    specs = [make_spec(**common, learning_rate=0.1 * (index + 1), seed=index) for index in range(8)]
    alone_results, alone = separately(specs)
    together_results, together = fused(specs)
    for expected, actual, alone_recorder, together_recorder in zip(
        alone_results, together_results, alone, together, strict=True
    ):
        for name in ("val_loss", "val_accuracy"):
            assert together_recorder.series(name) == alone_recorder.series(name), name
        assert actual.summary.final_val_loss == expected.summary.final_val_loss


def test_each_model_reports_progress_telemetry_and_target_like_its_run() -> None:
    specs = [
        make_spec(
            steps=60, eval_every=20, telemetry_every=20, target_accuracy=0.4, seed=seed, learning_rate=rate
        )
        for seed, rate in [(0, 0.1), (1, 0.5)]
    ]
    alone_results, alone = separately(specs)
    together_results, together = fused(specs)
    for expected, actual, alone_recorder, together_recorder in zip(
        alone_results, together_results, alone, together, strict=True
    ):
        steps = [progress.step for progress in together_recorder.progress]
        assert steps[0] == 0 and steps[-1] == 60 and steps == sorted(steps)
        assert all(progress.steps == 60 for progress in together_recorder.progress)
        assert together_recorder.progress[-1].steps_per_second is not None
        assert [(r.step, r.layer) for r in together_recorder.telemetry] == [
            (r.step, r.layer) for r in alone_recorder.telemetry
        ]
        for mine, theirs in zip(together_recorder.telemetry, alone_recorder.telemetry, strict=True):
            assert mine.p50 == pytest.approx(theirs.p50, abs=1e-5)
            assert mine.unit_p85 == pytest.approx(theirs.unit_p85, abs=1e-5)
            assert mine.grad_norm == pytest.approx(theirs.grad_norm, rel=1e-5)
        assert actual.summary.steps_to_target == expected.summary.steps_to_target is not None
        assert actual.summary.seconds_to_target is not None and actual.summary.seconds_to_target > 0
        assert together_recorder.checkpoints == {}  # a model's state means nothing outside its group


def comparable(points: list[MetricPoint]) -> list[tuple[str, int, float | str]]:
    """Metric points as tuples that compare equal when the values are (NaN, whose != is always true, as
    its text)."""
    return [
        (point.name, point.step, point.value if math.isfinite(point.value) else repr(point.value))
        for point in points
    ]


@pytest.mark.parametrize("batch_norm", [True, False], ids=["bn", "no-bn, one diverging"])
def test_each_model_probes_its_loss_landscape_as_its_separate_run_and_trains_on_untouched(
    batch_norm: bool,
) -> None:
    """Landscape probes move each model's slices of the stacks (BN's running averages included) and put
    them back: the records are the separate runs' to the bit, and training follows the same trajectory
    with probes on or off. Without BN one model diverges and leaves; the others are probed on after the
    stacks shrank."""
    common = {"steps": 120, "eval_every": 20, "landscape_every": 40, "batch_size": 60}
    if batch_norm:
        specs = [
            make_spec(**common, learning_rate=0.1, seed=0),
            make_spec(**common, learning_rate=1.0, seed=1, bn_eps=1e-3),
        ]
    else:
        specs = [
            make_spec(**common, **DIVERGING, learning_rate=rate, seed=seed)
            for rate, seed in [(0.05, 0), (100.0, 1), (0.2, 2)]
        ]
    alone_results, alone = separately(specs)
    together_results, together = fused(specs)
    _, unprobed = fused([spec.model_copy(update={"landscape_every": 0}) for spec in specs])
    for expected, actual, alone_recorder, together_recorder, unprobed_recorder in zip(
        alone_results, together_results, alone, together, unprobed, strict=True
    ):
        assert actual.outcome == expected.outcome
        assert together_recorder.landscape == alone_recorder.landscape
        assert comparable(together_recorder.metrics) == comparable(unprobed_recorder.metrics)
    probed = [len(recorder.landscape) for recorder in together]
    assert probed == ([3, 3] if batch_norm else [3, 0, 3])


def test_dropout_agrees_in_distribution_and_a_rate_of_zero_exactly() -> None:
    """Fused masks are not a separate run's masks: over seeds, the train losses must agree in the mean."""
    seeds = range(6)
    common = {"steps": 200, "eval_every": 200, "learning_rate": 0.2}
    dropped = [make_spec(**common, dropout=0.5, seed=seed) for seed in seeds]
    kept = [make_spec(**common, dropout=0.0, seed=seed) for seed in seeds]
    _, dropped_alone = separately(dropped)
    _, kept_alone = separately(kept[:1])
    _, together = fused(dropped + kept)  # one group, two rates

    def final_train_losses(recorders: list[Recorder]) -> list[float]:
        return [recorder.series("train_loss")[200] for recorder in recorders]

    alone_losses, fused_losses = final_train_losses(dropped_alone), final_train_losses(together[:6])
    no_dropout_losses = final_train_losses(together[6:])
    standard_error = math.sqrt(
        (statistics.variance(alone_losses) + statistics.variance(fused_losses)) / len(seeds)
    )
    difference = abs(statistics.mean(fused_losses) - statistics.mean(alone_losses))
    assert difference <= 4 * standard_error
    # ...and dropout is really on: without it, the train loss is lower by far more than that margin.
    assert statistics.mean(fused_losses) - statistics.mean(no_dropout_losses) > 8 * standard_error
    assert_same_metrics(kept_alone[0], together[6], tolerance=1e-6)


def test_a_diverging_model_ends_diverged_and_leaves_the_others_as_they_were() -> None:
    common = {**DIVERGING, "steps": 200, "eval_every": 10}
    steady = [make_spec(**common, learning_rate=0.1, seed=0), make_spec(**common, learning_rate=0.05, seed=2)]
    diverging = make_spec(**common, learning_rate=100.0, seed=1)
    [alone_result], _ = separately([diverging])
    results, recorders = fused([steady[0], diverging, steady[1]])
    reference_results, reference = fused(steady)

    assert alone_result.outcome == "diverged"
    assert results[1].outcome == "diverged"
    assert results[1].summary.diverged_at_step == results[1].steps_completed == alone_result.steps_completed
    assert all(point.step < results[1].steps_completed for point in recorders[1].metrics)
    assert all(math.isfinite(point.value) for point in recorders[1].metrics)
    assert recorders[1].progress[-1].step < results[1].steps_completed
    for result, recorder, expected, reference_recorder in zip(
        [results[0], results[2]], [recorders[0], recorders[2]], reference_results, reference, strict=True
    ):
        assert result.outcome == expected.outcome == "succeeded"
        assert_same_metrics(reference_recorder, recorder, tolerance=1e-6)


def test_each_model_s_result_is_reported_the_moment_it_ends_while_the_others_train_on() -> None:
    common = {**DIVERGING, "steps": 200, "eval_every": 10}
    specs = [
        make_spec(**common, learning_rate=0.1, seed=0),
        make_spec(**common, learning_rate=100.0, seed=1),
        make_spec(**common, learning_rate=0.05, seed=2),
    ]
    events: list[tuple[str, int, int]] = []  # (what, model, step), in the order the trainer made them
    reported: list[tuple[int, Result]] = []

    def on_model_result(index: int, result: Result) -> None:
        reported.append((index, result))
        events.append(("result", index, result.steps_completed))

    def progress_of(index: int) -> Callable[[Progress], None]:
        return lambda progress: events.append(("progress", index, progress.step))

    results = run_fused(
        specs,
        [Callbacks(on_progress=progress_of(index)) for index in range(len(specs))],
        settings=Settings(),
        on_model_result=on_model_result,
    )

    assert sorted(index for index, _ in reported) == [0, 1, 2]  # once per model
    assert dict(reported) == dict(enumerate(results))
    diverged = results[1]
    assert diverged.outcome == "diverged" and diverged.summary.diverged_at_step == diverged.steps_completed
    assert diverged.steps_completed < 100
    ended_at = events.index(("result", 1, diverged.steps_completed))
    before, after = events[:ended_at], events[ended_at + 1 :]
    # Reported at the sync point that found it, not when the group ended: the others had not reached the
    # step it diverged at, and trained on to the last step afterwards.
    assert all(step < diverged.steps_completed for what, _, step in before if what == "progress")
    for index in (0, 2):
        later_steps = [step for what, model, step in after if what == "progress" and model == index]
        assert later_steps[-1] == 200 and len(later_steps) > 1
    assert sorted(after[-2:]) == [("result", 0, 200), ("result", 2, 200)]


def test_cancelling_one_model_stops_only_that_one() -> None:
    specs = [make_spec(steps=100, eval_every=20, seed=seed) for seed in range(3)]
    recorders = [Recorder(), Recorder(stop_after_step=40), Recorder()]
    results, _ = fused(specs, recorders)
    _, reference = fused(specs)

    assert [result.outcome for result in results] == ["succeeded", "cancelled", "succeeded"]
    assert results[1].steps_completed == 40
    assert max(point.step for point in recorders[1].metrics) == 40
    assert recorders[1].progress[-1].step == 40
    assert_same_metrics(reference[0], recorders[0], tolerance=1e-6)
    assert_same_metrics(reference[2], recorders[2], tolerance=1e-6)


def test_a_group_killed_mid_training_resumes_from_its_checkpoint_exactly() -> None:
    """One model with dropout (its masks' generator must resume too), one diverging before the snapshot."""
    common = {**DIVERGING, "steps": 150, "eval_every": 25, "telemetry_every": 50, "checkpoint_every": 50}
    specs = [
        make_spec(**common, learning_rate=0.1, seed=0, dropout=0.3),
        make_spec(**common, learning_rate=100.0, seed=1),
        make_spec(**common, learning_rate=0.05, seed=2),
    ]
    blobs: dict[int, bytes] = {}
    uninterrupted_results, uninterrupted = fused(specs, on_group_checkpoint=blobs.__setitem__)
    assert sorted(blobs) == [50, 100]
    assert uninterrupted_results[1].outcome == "diverged" and uninterrupted_results[1].steps_completed < 50

    class WorkerLost(Exception):
        pass

    def crash_after_the_second_checkpoint(progress: Progress) -> None:
        if progress.step > 100:
            raise WorkerLost

    crashed_blobs: dict[int, bytes] = {}
    crashing = [Recorder() for _ in specs]
    crashing_callbacks = [recorder.callbacks() for recorder in crashing]
    crashing_callbacks[2].on_progress = crash_after_the_second_checkpoint
    with pytest.raises(WorkerLost):
        run_fused(
            specs, crashing_callbacks, settings=Settings(), on_group_checkpoint=crashed_blobs.__setitem__
        )

    reported: dict[int, Result] = {}
    resumed_results, resumed = fused(
        specs, checkpoint=crashed_blobs[100], on_model_result=reported.__setitem__
    )
    assert resumed[1].metrics == [] and resumed[1].progress == []  # it had ended: nothing new to say
    assert reported == {0: resumed_results[0], 2: resumed_results[2]}
    assert resumed_results[1].outcome == "diverged"
    assert resumed_results[1].steps_completed == uninterrupted_results[1].steps_completed
    for slot in (0, 2):
        assert resumed[slot].progress[0].step == 100
        assert resumed[slot].metrics == [point for point in uninterrupted[slot].metrics if point.step > 100]
        assert resumed[slot].telemetry == [
            record for record in uninterrupted[slot].telemetry if record.step > 100
        ]
        expected, actual = uninterrupted_results[slot].summary, resumed_results[slot].summary
        assert (actual.final_val_loss, actual.best_val_accuracy) == (
            expected.final_val_loss,
            expected.best_val_accuracy,
        )


def test_a_checkpoint_of_another_group_is_refused() -> None:
    specs = [make_spec(steps=100, checkpoint_every=50, seed=seed) for seed in range(2)]
    blobs: dict[int, bytes] = {}
    fused(specs, on_group_checkpoint=blobs.__setitem__)
    with pytest.raises(ValueError, match="different specs"):
        fused(list(reversed(specs)), checkpoint=blobs[50])


@pytest.mark.parametrize(
    "other",
    [{"batch_size": 16}, {"optimizer": "adam"}, {"architecture": {"kind": "cnn", "channels": [4]}}],
    ids=["batch-size", "optimizer", "mlp-and-cnn"],
)
def test_specs_that_cannot_fuse_are_refused(other: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="cannot be trained as one fused group"):
        fused([make_spec(), make_spec(**other)])


def test_one_callbacks_per_spec() -> None:
    with pytest.raises(ValueError, match="one Callbacks per spec"):
        run_fused([make_spec(), make_spec(seed=1)], [Callbacks()], settings=Settings())


class BatchNormBackwardCalls(TorchDispatchMode):
    """Counts ATen batch-norm backward calls made while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        self.calls += func is torch.ops.aten.native_batch_norm_backward.default
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("models", [3, REPAIR_FROM_MODELS])
def test_batch_norm_backward_is_one_call_per_layer_and_exact_on_the_cpu_too(models: int) -> None:
    """At width 100 one call over the group rounds some channels unlike separate runs on the CPU; the stack
    repairs them in a few batched operations (`core.ml.cpu_exactness`), so it still makes one call per
    layer there as on another device (here the meta device, which computes shapes only) — below
    REPAIR_FROM_MODELS models a call per model, which costs less there — and each model's gradients are
    those of a stack of one, to the bit (at one thread, as fused runs are: on more, a batched matrix
    product shares out its work unlike a single one)."""
    torch.set_num_threads(1)  # what `train_stack` sets by default
    specs = [
        make_spec(architecture={"kind": "mlp", "hidden": [100, 100], "activation": "sigmoid"}, seed=seed)
        for seed in range(models)
    ]
    layers = 2
    calls = {}
    for device in (torch.device("cpu"), torch.device("meta")):
        model = StackedMLP([build_model(spec, (64,), 10) for spec in specs], specs, device)
        inputs = torch.randn(len(specs), 60, 64, device=device)
        labels = torch.randint(0, 10, (len(specs) * 60,), device=device)
        model.loss_and_gradients(inputs, labels, None)  # the CPU's rounding check runs once, here
        with BatchNormBackwardCalls() as counter:
            _, _, gradients = model.loss_and_gradients(inputs, labels, None)
        calls[device.type] = counter.calls
        if device.type == "cpu":
            for index, spec in enumerate(specs):
                alone = StackedMLP([build_model(spec, (64,), 10)], [spec], device)
                own_inputs, own_labels = inputs[index : index + 1], labels[index * 60 : index * 60 + 60]
                alone.loss_and_gradients(own_inputs, own_labels, None)
                _, _, alone_gradients = alone.loss_and_gradients(own_inputs, own_labels, None)
                for together, by_itself in zip(gradients, alone_gradients, strict=True):
                    assert torch.equal(together[index], by_itself[0])
    assert calls == {"cpu": layers * (1 if models >= REPAIR_FROM_MODELS else models), "meta": layers}
