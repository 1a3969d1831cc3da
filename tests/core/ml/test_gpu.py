"""The CUDA path (marked `gpu`: deselected where torch finds no CUDA device): stacked and lone runs agree to
rounding, CUDA graphs change nothing, a CUDA group resumes from its checkpoint."""

from __future__ import annotations

from typing import Any

import pytest

from core.ml import run
from core.ml.fused import run_fused
from core.results import Callbacks, MetricPoint, Result
from core.settings import Settings
from core.spec import JobSpec
from tests.core.ml.helpers import make_spec

pytestmark = pytest.mark.gpu
TOLERANCE = 1e-4  # val loss: batched and single products may run different kernels on a GPU


def cuda_specs(optimizer: str = "sgd", **changes: Any) -> list[JobSpec]:
    rates = {"sgd": (0.05, 0.2, 0.5), "momentum": (0.01, 0.05, 0.1), "adam": (0.001, 0.002, 0.003)}[optimizer]
    return [
        make_spec(device="cuda", optimizer=optimizer, learning_rate=rate, seed=index, **changes)
        for index, rate in enumerate(rates)
    ]


def val_losses(points: list[MetricPoint]) -> dict[int, float]:
    return {point.step: point.value for point in points if point.name == "val_loss"}


def fused_run(
    specs: list[JobSpec], settings: Settings, **options: Any
) -> tuple[list[Result], list[list[MetricPoint]]]:
    metrics: list[list[MetricPoint]] = [[] for _ in specs]
    results = run_fused(
        specs, [Callbacks(on_metrics=m.extend) for m in metrics], settings=settings, **options
    )
    return results, metrics


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("batch_norm", [True, False], ids=["bn", "no-bn"])
def test_fused_models_follow_their_lone_runs_on_cuda(optimizer: str, batch_norm: bool) -> None:
    specs = cuda_specs(optimizer, batch_norm=batch_norm)
    _, together = fused_run(specs, Settings())
    for spec, fused_points in zip(specs, together, strict=True):
        alone: list[MetricPoint] = []
        run(spec, Callbacks(on_metrics=alone.extend), settings=Settings())
        expected, actual = val_losses(alone), val_losses(fused_points)
        assert sorted(actual) == sorted(expected)
        assert all(actual[step] == pytest.approx(value, abs=TOLERANCE) for step, value in expected.items())


@pytest.mark.parametrize("optimizer", ["sgd", "momentum"])
def test_cuda_graphs_on_and_off_give_the_same_results(optimizer: str) -> None:
    specs = cuda_specs(optimizer, steps=100, eval_every=20)
    graphed_results, graphed = fused_run(specs, Settings(cuda_graphs=True))
    eager_results, eager = fused_run(specs, Settings(cuda_graphs=False))
    for with_graphs, without in zip(graphed, eager, strict=True):
        expected, actual = val_losses(without), val_losses(with_graphs)
        assert all(actual[step] == pytest.approx(value, abs=TOLERANCE) for step, value in expected.items())
    assert [r.steps_completed for r in graphed_results] == [r.steps_completed for r in eager_results]


def test_a_cuda_group_resumes_from_its_checkpoint() -> None:
    specs = cuda_specs("momentum", steps=120, eval_every=20, checkpoint_every=60)
    blobs: dict[int, bytes] = {}
    _, uninterrupted = fused_run(specs, Settings(), on_group_checkpoint=blobs.__setitem__)
    assert sorted(blobs) == [60]
    _, resumed = fused_run(specs, Settings(), checkpoint=blobs[60])
    for full, tail in zip(uninterrupted, resumed, strict=True):
        expected = {step: value for step, value in val_losses(full).items() if step > 60}
        actual = val_losses(tail)
        assert sorted(actual) == sorted(expected)
        assert all(actual[step] == pytest.approx(value, abs=TOLERANCE) for step, value in expected.items())
