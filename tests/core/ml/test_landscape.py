"""Loss-landscape probes: every figure against a direct computation, and a run's trajectory untouched.

The direct computation shares nothing with the probe but the net's builder: it loads the parameters into
fresh models, writes w − ηg into them by hand and takes losses and gradients with a plain backward pass.
Nets are tiny (two hidden layers of 32 on digits) and runs at most 120 steps.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.ml import run
from core.ml.data import load_dataset
from core.ml.landscape import STEP_SIZE_MULTIPLES, LandscapeProbe
from core.ml.nets import build_model
from core.ml.sampling import BatchSampler
from core.ml.training import build_optimizer
from core.results import Callbacks, LandscapeRecord, MetricPoint
from core.settings import Settings
from core.spec import JobSpec
from tests.core.ml.helpers import make_spec, net_state


def direct_figures(
    spec: JobSpec, state: dict[str, Tensor], inputs: Tensor, labels: Tensor, input_shape: tuple[int, ...]
) -> dict[str, Any]:
    """The probe's figures for a net of `spec` with `state`, computed the plain way, in float64."""

    def fresh_model() -> nn.Module:
        model = build_model(spec, input_shape, 10).double()
        model.load_state_dict(state)
        model.train()  # BN normalizes with the probe batch's statistics…
        for module in model.modules():
            if isinstance(module, nn.Dropout):
                module.eval()  # …and dropout is off
        return model

    def loss_and_gradient(model: nn.Module) -> tuple[float, Tensor]:
        loss = F.cross_entropy(model(inputs.double()), labels)
        loss.backward()
        gradient = torch.cat([parameter.grad.flatten() for parameter in model.parameters()])  # type: ignore[union-attr]
        return loss.item(), gradient

    _, gradient = loss_and_gradient(fresh_model())
    losses, changes = [], []
    step_sizes = [multiple * spec.learning_rate for multiple in STEP_SIZE_MULTIPLES]
    for step_size in step_sizes:
        model = fresh_model()
        with torch.no_grad():
            offset = 0
            for parameter in model.parameters():
                count = parameter.numel()
                parameter.sub_(step_size * gradient[offset : offset + count].view_as(parameter))
                offset += count
        loss, gradient_there = loss_and_gradient(model)
        losses.append(loss)
        changes.append((gradient_there - gradient).norm().item())
    grad_norm = gradient.norm().item()
    return {
        "step_sizes": step_sizes,
        "losses": losses,
        "loss_range": max(losses) - min(losses),
        "gradient_predictiveness": max(changes),
        "beta_smoothness": max(
            change / (size * grad_norm) for change, size in zip(changes, step_sizes, strict=True)
        ),
        "grad_norm": grad_norm,
        "relative_gradient_change": max(changes) / grad_norm,
    }


def assert_matches(record: LandscapeRecord, expected: dict[str, Any]) -> None:
    for name, value in expected.items():
        assert getattr(record, name) == pytest.approx(value, rel=2e-4, abs=1e-6), name


def trained_model(spec: JobSpec, steps: int) -> tuple[nn.Module, Any]:
    """A model of `spec` after `steps` plain SGD updates (so the probe is not taken at the init)."""
    data = load_dataset(spec.dataset, spec.seed, "cpu", Settings())
    model = build_model(spec, data.input_shape, data.num_classes)
    optimizer = build_optimizer(spec, model)
    sampler = BatchSampler(len(data.train_y), spec.batch_size, spec.seed, "cpu")
    for _ in range(steps):
        indices = sampler.next()
        loss = F.cross_entropy(model(data.train_x[indices]), data.train_y[indices])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model, data


@pytest.mark.parametrize(
    "changes",
    [
        {"batch_norm": True},
        {"batch_norm": False},
        {"batch_norm": True, "bn_implementation": "bnlab", "dropout": 0.3},
        {"batch_norm": False, "architecture": {"kind": "mlp", "hidden": [16], "activation": "relu"}},
    ],
    ids=["bn", "no-bn", "paper-bn-with-dropout", "relu-no-bn"],
)
def test_each_figure_matches_a_direct_computation(changes: dict[str, Any]) -> None:
    spec = make_spec(learning_rate=0.5, **changes)
    model, data = trained_model(spec, steps=30)
    probe = LandscapeProbe.for_run(model, data.train_x, data.train_y, spec)
    record = probe(step=30)
    assert record.step == 30
    inputs, labels = data.train_x[: spec.batch_size], data.train_y[: spec.batch_size]
    assert_matches(record, direct_figures(spec, model.state_dict(), inputs, labels, data.input_shape))
    # Not degenerate: the gradient moves along the path, and the landscape is not flat.
    assert record.gradient_predictiveness > 0 and record.loss_range > 0


def test_the_probe_leaves_the_model_and_the_generators_exactly_as_they_were() -> None:
    spec = make_spec(dropout=0.2)
    model, data = trained_model(spec, steps=10)
    gradients_before = [parameter.grad.clone() for parameter in model.parameters()]  # type: ignore[union-attr]
    state_before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    rng_before = torch.get_rng_state()
    LandscapeProbe.for_run(model, data.train_x, data.train_y, spec)(step=10)
    assert torch.equal(torch.get_rng_state(), rng_before)
    for name, tensor in model.state_dict().items():  # parameters and BN's running averages
        assert torch.equal(tensor, state_before[name]), name
    for parameter, gradient in zip(model.parameters(), gradients_before, strict=True):
        assert torch.equal(parameter.grad, gradient)  # type: ignore[arg-type]
    assert model.training and all(module.training for module in model.modules())


class Recorder:
    def __init__(self) -> None:
        self.metrics: list[MetricPoint] = []
        self.landscape: list[LandscapeRecord] = []
        self.checkpoints: dict[int, bytes] = {}

    def callbacks(self) -> Callbacks:
        return Callbacks(
            on_metrics=self.metrics.extend,
            on_landscape=self.landscape.extend,
            on_checkpoint=self.checkpoints.__setitem__,
        )


def recorded(spec: JobSpec) -> Recorder:
    recorder = Recorder()
    result = run(spec, recorder.callbacks(), settings=Settings())
    assert result.outcome == "succeeded"
    return recorder


def snapshot(blob: bytes) -> dict[str, Any]:
    return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)


def assert_same_state(left: Any, right: Any) -> None:
    """Nested dicts/lists of tensors and numbers, bit for bit."""
    if isinstance(left, Tensor):
        assert isinstance(right, Tensor) and torch.equal(left, right)
    elif isinstance(left, dict):
        assert left.keys() == right.keys()
        for key in left:
            assert_same_state(left[key], right[key])
    elif isinstance(left, list | tuple):
        assert len(left) == len(right)
        for left_item, right_item in zip(left, right, strict=True):
            assert_same_state(left_item, right_item)
    else:
        assert left == right


@pytest.mark.parametrize(
    "changes",
    [
        {"optimizer": "sgd", "dropout": 0.2},
        {"optimizer": "momentum", "bn_implementation": "bnlab"},
        {"optimizer": "adam", "learning_rate": 0.01, "batch_norm": False, "dropout": 0.1},
    ],
    ids=["sgd-dropout", "momentum-paper-bn", "adam-no-bn-dropout"],
)
def test_probes_on_and_off_train_exactly_the_same(changes: dict[str, Any]) -> None:
    common = {"steps": 90, "eval_every": 30, "checkpoint_every": 40, **changes}
    without = recorded(make_spec(landscape_every=0, **common))
    # Every 20 steps: probes fall at checkpoints (40, 80) and between them, and between evaluations.
    probed = recorded(make_spec(landscape_every=20, **common))
    assert without.landscape == []
    assert [record.step for record in probed.landscape] == [20, 40, 60, 80]
    assert probed.metrics == without.metrics  # every figure, bit for bit, the final step's included
    assert sorted(probed.checkpoints) == sorted(without.checkpoints) == [40, 80]
    for step in (40, 80):  # taken right after a probe: model, optimizer, sampler and generators
        with_probes, without_probes = snapshot(probed.checkpoints[step]), snapshot(without.checkpoints[step])
        for part in ("stack", "sampler", "window_losses", "window_correct"):
            assert_same_state(with_probes[part], without_probes[part])


def test_a_probe_in_a_run_is_the_direct_computation_at_that_step() -> None:
    spec = make_spec(steps=60, eval_every=30, landscape_every=25, checkpoint_every=25, learning_rate=0.3)
    recorder = recorded(spec)
    assert [record.step for record in recorder.landscape] == [25, 50]
    data = load_dataset(spec.dataset, spec.seed, "cpu", Settings())
    inputs, labels = data.train_x[: spec.batch_size], data.train_y[: spec.batch_size]
    for record in recorder.landscape:
        state = net_state(recorder.checkpoints[record.step], spec, data.input_shape)
        assert record.step_sizes == pytest.approx([multiple * 0.3 for multiple in STEP_SIZE_MULTIPLES])
        assert_matches(record, direct_figures(spec, state, inputs, labels, data.input_shape))
