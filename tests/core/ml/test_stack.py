"""The one stacked trainer: a step's kernels do not grow with the number of models, a stretch between sync
points never waits for the device, and the spec options that end or split a run."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from core.ml import run, stretches
from core.ml import trainer as trainer_module
from core.ml.cpu_exactness import REPAIR_FROM_MODELS
from core.ml.fused import run_fused
from core.ml.trainer import StackTrainer, train_stack
from core.results import Callbacks
from core.settings import Settings
from core.spec import JobSpec
from tests.core.ml.helpers import make_spec

HOST_SYNC_OPS = frozenset({"aten._local_scalar_dense.default", "aten.item.default"})


class OpCounter(TorchDispatchMode):
    """Counts every ATen operation dispatched while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        self.counts[str(func)] += 1
        return func(*args, **(kwargs or {}))


def stack_of(models: int, device: str, **changes: Any) -> StackTrainer:
    specs = [
        make_spec(learning_rate=0.05 * (1 + index % 4), seed=index, **changes) for index in range(models)
    ]
    return StackTrainer(specs, [Callbacks() for _ in specs], torch.device(device), Settings())


def step_ops(models: int, device: str, **changes: Any) -> Counter[str]:
    trainer = stack_of(models, device, **changes)
    trainer.train(2)  # a first step outside the count: one-off work (the CPU's rounding check) is done
    with OpCounter() as counter:
        trainer.train(1)
    return counter.counts


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("batch_norm", [True, False], ids=["bn", "no-bn"])
def test_a_step_makes_as_many_kernel_calls_for_64_models_as_for_4_on_an_accelerator(
    optimizer: str, batch_norm: bool
) -> None:
    """The meta device computes shapes only: it stands in for an accelerator's dispatch."""
    four = step_ops(4, "meta", optimizer=optimizer, batch_norm=batch_norm)
    sixty_four = step_ops(64, "meta", optimizer=optimizer, batch_norm=batch_norm)
    assert sum(four.values()) > 20
    assert sixty_four == four


CNN = {"architecture": {"kind": "cnn", "channels": [8, 16], "activation": "relu"}}


@pytest.mark.parametrize(
    "net",
    [
        CNN,
        {**CNN, "bn_implementation": "bnlab"},
        {"bn_implementation": "bnlab"},
        {**CNN, "optimizer": "adam"},
    ],
    ids=["cnn", "cnn-paper-bn", "mlp-paper-bn", "cnn-adam"],
)
def test_a_step_of_stacked_cnns_and_paper_bn_makes_as_many_kernel_calls_for_64_models_as_for_4(
    net: dict[str, Any],
) -> None:
    four, sixty_four = (step_ops(models, "meta", **net) for models in (4, 64))
    assert sum(four.values()) > 20
    assert sixty_four == four


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize(
    "net",
    [
        CNN,
        {**CNN, "bn_implementation": "bnlab"},
        {**CNN, "batch_norm": False},
        {"bn_implementation": "bnlab"},
    ],
    ids=["cnn", "cnn-paper-bn", "cnn-no-bn", "mlp-paper-bn"],
)
def test_stacked_cnns_and_paper_bn_follow_their_lone_runs(net: dict[str, Any], optimizer: str) -> None:
    """Grouped convolutions agree with single ones to rounding; the paper's BN on an MLP to the bit here.

    Short runs: a CNN's max-pooling and ReLU turn a rounding difference into a different choice now and
    then, after which two runs of one net drift apart as two seeds would."""
    rate = {"sgd": 0.05, "momentum": 0.01, "adam": 0.0005}[optimizer]  # where rounding is not yet chaos
    specs = [
        make_spec(
            **net, optimizer=optimizer, learning_rate=rate * (1 + seed), seed=seed, steps=20, eval_every=10
        )
        for seed in range(3)
    ]
    together = train_stack(specs, [Callbacks() for _ in specs], settings=Settings())
    for spec, stacked in zip(specs, together, strict=True):
        (alone,) = train_stack([spec], [Callbacks()], settings=Settings())
        assert stacked.summary.final_val_loss == pytest.approx(alone.summary.final_val_loss, abs=1e-4)
        assert stacked.summary.final_val_accuracy == pytest.approx(alone.summary.final_val_accuracy, abs=1e-9)


@pytest.mark.parametrize("batch_norm", [True, False], ids=["bn", "no-bn"])
def test_on_the_cpu_too_a_step_makes_as_many_kernel_calls_for_64_models_as_for_8(batch_norm: bool) -> None:
    """Bit-exactness included: a 100-wide layer is off the CPU's vector width, and BN's backward pass
    repairs the channels one call rounds unlike separate runs in batched operations (core.ml.cpu_exactness),
    not by a call per model (that only below REPAIR_FROM_MODELS models, where it costs less)."""
    width = {"architecture": {"kind": "mlp", "hidden": [100, 100], "activation": "sigmoid"}}
    eight, sixty_four = (
        step_ops(models, "cpu", batch_norm=batch_norm, **width) for models in (REPAIR_FROM_MODELS, 64)
    )
    assert sum(eight.values()) > 20
    assert sixty_four == eight


@contextmanager
def host_reads_counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Counts what would make the host wait for the device: ATen's scalar reads, and `.item()`,
    `.tolist()`, `.cpu()` and `.numpy()` however they are reached."""
    counts: Counter[str] = Counter()
    for name in ("item", "tolist", "cpu", "numpy"):
        original = getattr(torch.Tensor, name)

        def counted(self: torch.Tensor, *args: Any, _name: str = name, _original: Any = original) -> Any:
            counts[_name] += 1
            return _original(self, *args)

        monkeypatch.setattr(torch.Tensor, name, counted)
    with OpCounter() as counter:
        yield counts
    counts.update({op: number for op, number in counter.counts.items() if op in HOST_SYNC_OPS})


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_a_stretch_between_sync_points_never_waits_for_the_device(
    device: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """200 steps over 8 epochs of batches, with BN and dropout: no read of any value (on the meta device a
    read would raise besides)."""
    trainer = stack_of(8, device, dropout=0.1 if device == "cpu" else 0.0, batch_size=60)
    with host_reads_counted(monkeypatch) as reads:
        losses, correct = trainer.train(200)
    assert losses.shape == correct.shape == (200, 8)
    assert reads == Counter()


def _recorded(specs: list[JobSpec], *, fused: bool) -> tuple[list[Any], list[list[Any]]]:
    metrics: list[list[Any]] = [[] for _ in specs]
    callbacks = [Callbacks(on_metrics=points.extend) for points in metrics]
    if fused:
        return run_fused(specs, callbacks, settings=Settings()), metrics
    return [
        run(spec, callback, settings=Settings()) for spec, callback in zip(specs, callbacks, strict=True)
    ], metrics


@pytest.mark.parametrize("fused", [False, True], ids=["alone", "fused"])
def test_stop_at_target_ends_at_the_first_evaluation_at_the_target_and_the_others_go_on(fused: bool) -> None:
    common = {"steps": 200, "eval_every": 10, "target_accuracy": 0.8}
    specs = [
        make_spec(**common, learning_rate=0.5, stop_at_target=True),
        make_spec(**common, learning_rate=0.5, stop_at_target=False),
        make_spec(**common, learning_rate=0.02, stop_at_target=True, seed=1),  # too slow to get there
    ]
    results, metrics = _recorded(specs, fused=fused)
    stopped, going_on, slow = results
    assert stopped.outcome == "succeeded" and stopped.summary.steps_to_target is not None
    assert stopped.steps_completed == stopped.summary.steps_to_target < 200
    accuracies = {point.step: point.value for point in metrics[0] if point.name == "val_accuracy"}
    assert (
        max(accuracies) == stopped.summary.steps_to_target
    )  # its last evaluation is the first at the target
    assert all(value < 0.8 for step, value in accuracies.items() if step < stopped.steps_completed)
    assert accuracies[stopped.steps_completed] >= 0.8
    # The same model without the option reaches the target at the same step and trains to the end.
    assert going_on.steps_completed == 200
    assert going_on.summary.steps_to_target == stopped.summary.steps_to_target
    assert slow.steps_completed == 200 and slow.summary.steps_to_target is None


@pytest.mark.parametrize("fused", [False, True], ids=["alone", "fused"])
def test_split_seed_keeps_the_validation_set_fixed_across_training_seeds(fused: bool) -> None:
    common = {"steps": 20, "eval_every": 20}
    fixed = [make_spec(**common, seed=seed, split_seed=7) for seed in (0, 1)]
    moving = [make_spec(**common, seed=seed) for seed in (0, 1)]
    [first, second], _ = _recorded(fixed, fused=fused)
    trainer = StackTrainer(fixed + moving, [Callbacks() for _ in range(4)], torch.device("cpu"), Settings())
    assert trainer.data.dataset_slots == [0, 0, 1, 2]  # split 7, then seed 0's and seed 1's splits
    assert first.summary.final_val_accuracy != second.summary.final_val_accuracy  # other nets, other figures
    # split_seed equal to the seed is what the seed alone does.
    same_split = make_spec(**common, seed=3, split_seed=3)
    [with_option], _ = _recorded([same_split], fused=fused)
    [without], _ = _recorded([make_spec(**common, seed=3)], fused=fused)
    assert with_option.summary.final_val_loss == without.summary.final_val_loss


@pytest.mark.parametrize("models", [1, 8])
def test_telemetry_of_a_stack_is_one_batched_probe_and_one_read(
    models: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = stack_of(models, "cpu", batch_size=60)
    trainer.train(3)
    inputs = trainer.data.train_x[: trainer.data.probe_size].expand(models, -1, -1)
    with host_reads_counted(monkeypatch) as reads, OpCounter() as counter:
        records = trainer.stack.telemetry(inputs, step=3, training=True)
    assert reads == Counter({"tolist": 1})
    assert [[record.layer for record in rows] for rows in records] == [[0, 1]] * models
    assert counter.counts["aten.kthvalue.default"] == 2 * 6  # 2 layers × 6 percentiles, whatever M


@pytest.mark.parametrize("models", [1, 8])
def test_landscape_probes_of_a_stack_are_batched_and_read_once(
    models: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = stack_of(models, "cpu", batch_size=60)
    trainer.train(3)
    inputs = trainer.data.train_x[:60].expand(models, -1, -1)
    labels = trainer.data.train_y[:60].expand(models, -1)
    before = [tensor.clone() for tensor in trainer.stack.state_tensors()]
    with host_reads_counted(monkeypatch) as reads, OpCounter() as counter:
        records = trainer.stack.landscape(inputs, labels, step=3)
    assert reads == Counter({"tolist": 1})
    assert len(records) == models and all(len(record.losses) == 4 for record in records)
    assert counter.counts["aten.bmm.default"] > 0
    per_point = counter.counts["aten.baddbmm.default"]  # the head's forward: once per point, whatever M
    assert per_point == 5
    after = trainer.stack.state_tensors()
    assert all(torch.equal(old, new) for old, new in zip(before, after, strict=True))  # put back bit for bit


def test_a_model_s_dropout_masks_do_not_depend_on_when_others_leave_the_stack(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Stretches of other lengths find the diverging model at other steps and compact the stacks then:
    the dropout model's figures stay the same to the bit."""
    diverging = {
        "architecture": {"kind": "mlp", "hidden": [64, 64], "activation": "relu"},
        "batch_norm": False,
    }
    common = {**diverging, "steps": 90, "eval_every": 30}
    specs = [
        make_spec(**common, learning_rate=0.1, seed=0, dropout=0.3),
        make_spec(**common, learning_rate=100.0, seed=1),
        make_spec(**common, learning_rate=0.05, seed=2, dropout=0.1),
    ]
    figures = []
    for first_stretch in (1, 8, 30):
        monkeypatch.setattr(trainer_module, "FIRST_STRETCH_STEPS", first_stretch)
        monkeypatch.setattr(stretches, "SYNC_SECONDS", 1e-9 if first_stretch == 1 else 10.0)
        results = train_stack(specs, [Callbacks() for _ in specs], settings=Settings())
        assert results[1].outcome == "diverged"
        figures.append(
            [(r.summary.final_val_loss, r.summary.final_train_loss) for r in (results[0], results[2])]
        )
    assert figures[0] == figures[1] == figures[2]


@pytest.mark.parametrize(
    "net",
    [CNN, {**CNN, "bn_implementation": "bnlab"}, {"bn_implementation": "bnlab"}, {}],
    ids=["cnn", "cnn-paper-bn", "mlp-paper-bn", "mlp"],
)
def test_landscape_probes_in_a_stack_are_those_of_the_lone_runs(net: dict[str, Any]) -> None:
    specs = [
        make_spec(**net, learning_rate=0.05 * (1 + seed), seed=seed, steps=20, landscape_every=10)
        for seed in range(3)
    ]
    together: list[list[Any]] = [[] for _ in specs]
    train_stack(specs, [Callbacks(on_landscape=records.extend) for records in together], settings=Settings())
    for spec, stacked in zip(specs, together, strict=True):
        alone: list[Any] = []
        train_stack([spec], [Callbacks(on_landscape=alone.extend)], settings=Settings())
        assert [record.step for record in stacked] == [record.step for record in alone] == [10, 20]
        for mine, theirs in zip(stacked, alone, strict=True):
            assert mine.step_sizes == theirs.step_sizes
            assert mine.losses == pytest.approx(theirs.losses, rel=1e-4)
            assert mine.grad_norm == pytest.approx(theirs.grad_norm, rel=1e-4)
            assert mine.beta_smoothness == pytest.approx(theirs.beta_smoothness, rel=1e-3)


def test_a_stacked_net_drops_out_for_its_models_with_dropout_when_the_first_has_none() -> None:
    """A CNN stack built from a first net without dropout still drops units of the models that ask for it;
    the model with rate 0 keeps every value and follows its lone run."""
    common = {**CNN, "steps": 20, "eval_every": 10}
    plain, dropping = make_spec(**common, seed=0), make_spec(**common, seed=1, dropout=0.5)
    together = train_stack([plain, dropping], [Callbacks(), Callbacks()], settings=Settings())
    (plain_alone,) = train_stack([plain], [Callbacks()], settings=Settings())
    (without_dropout,) = train_stack([make_spec(**common, seed=1)], [Callbacks()], settings=Settings())
    assert together[0].summary.final_val_loss == pytest.approx(plain_alone.summary.final_val_loss, abs=1e-4)
    assert together[1].summary.final_train_loss != pytest.approx(
        without_dropout.summary.final_train_loss, abs=1e-3
    )
