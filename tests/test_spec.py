"""The job spec accepts the paper's setup and names the field of every bad input."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from core.spec import MAX_DEPTH, MAX_STEPS, MAX_WIDTH, JobSpec, queue_for_device

PAPER_SPEC: dict[str, Any] = {
    "architecture": {"kind": "mlp", "hidden": [100, 100, 100], "activation": "sigmoid"},
    "batch_norm": True,
    "learning_rate": 0.1,
    "dropout": 0.0,
}


def with_changes(**changes: Any) -> dict[str, Any]:
    return {**PAPER_SPEC, **changes}


def test_paper_spec_gets_documented_defaults() -> None:
    spec = JobSpec.model_validate(PAPER_SPEC)
    assert spec.dataset == "digits"
    assert spec.batch_size == 60
    assert spec.optimizer == "sgd"
    assert spec.bn_implementation == "torch"
    assert spec.telemetry_every == 0 and spec.landscape_every == 0
    assert spec.telemetry_mode == "inference" and spec.normalization == "batch" and spec.groups is None
    assert JobSpec.model_validate(spec.model_dump()) == spec  # a stored spec rebuilds the same run


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"learning_rate": 0}, "learning_rate"),
        ({"learning_rate": -1}, "learning_rate"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"batch_size": 1}, "batch_size"),
        ({"batch_size": 10**6}, "batch_size"),
        ({"steps": MAX_STEPS + 1}, "steps"),
        ({"steps": 100, "eval_every": 101}, "eval_every"),
        ({"architecture": {"kind": "mlp", "hidden": [MAX_WIDTH + 1]}}, "architecture"),
        ({"architecture": {"kind": "mlp", "hidden": [10] * (MAX_DEPTH + 1)}}, "architecture"),
        ({"architecture": {"kind": "mlp", "hidden": []}}, "architecture"),
        ({"architecture": {"kind": "mlp", "activation": "swish"}}, "architecture"),
        ({"architecture": {"kind": "transformer"}}, "architecture"),
        ({"architecture": {"kind": "cnn"}, "dataset": "spirals"}, "dataset"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"init": "orthogonal"}, "init"),
        ({"bn_implementation": "keras"}, "bn_implementation"),
        ({"device": "tpu"}, "device"),
        ({"target_accuracy": 1.5}, "target_accuracy"),
        ({"stop_at_target": True}, "stop_at_target"),
        ({"split_seed": -1}, "split_seed"),
        ({"learning_rat": 0.1}, "learning_rat"),
        ({"normalization": "layer"}, "normalization"),  # contradicts batch_norm true
        ({"batch_norm": False, "normalization": "batch"}, "normalization"),
        ({"normalization": "instance"}, "normalization"),
        ({"batch_norm": False, "normalization": "group", "groups": 3}, "groups"),  # 3 does not divide 100
        ({"groups": 4}, "groups"),  # groups belong to group norm
        ({"telemetry_mode": "eval"}, "telemetry_mode"),
        ({"batch_norm": False, "bn_noise": {"mean_std": 1.0}}, "bn_noise"),  # noise after BN needs BN
        ({"bn_noise": {"mean_std": -1.0}}, "bn_noise"),
        ({"bn_noise": {"variance": 1.0}}, "bn_noise"),
    ],
)
def test_invalid_spec_names_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        JobSpec.model_validate(with_changes(**changes))
    assert field in {str(error["loc"][0]) for error in raised.value.errors()}


@pytest.mark.parametrize(
    ("given", "batch_norm", "normalization"),
    [
        ({"batch_norm": True}, True, "batch"),
        ({"batch_norm": False}, False, "none"),
        ({"normalization": "batch"}, True, "batch"),
        ({"normalization": "layer"}, False, "layer"),
        ({"normalization": "group", "groups": 4}, False, "group"),
        ({"batch_norm": True, "normalization": "batch"}, True, "batch"),
        ({"batch_norm": False, "normalization": "none"}, False, "none"),
    ],
)
def test_batch_norm_and_normalization_say_one_thing_either_way(
    given: dict[str, Any], batch_norm: bool, normalization: str
) -> None:
    fields = {key: value for key, value in PAPER_SPEC.items() if key != "batch_norm"}
    spec = JobSpec.model_validate({**fields, **given})
    assert (spec.batch_norm, spec.normalization) == (batch_norm, normalization)
    assert JobSpec.model_validate(spec.model_dump()) == spec


def test_single_example_batches_are_fine_without_batch_norm() -> None:
    assert JobSpec.model_validate(with_changes(batch_norm=False, batch_size=1)).batch_size == 1


def test_required_fields_are_named_when_missing() -> None:
    with pytest.raises(ValidationError) as raised:
        JobSpec.model_validate({})
    missing = {str(error["loc"][0]) for error in raised.value.errors()}
    assert missing == {"architecture", "batch_norm", "learning_rate", "dropout"}


@pytest.mark.parametrize(
    ("device", "queue"), [("cpu", "cpu"), ("cuda", "gpu"), ("cuda:1", "gpu"), ("auto", "default")]
)
def test_device_routes_to_queue(device: str, queue: str) -> None:
    assert queue_for_device(device) == queue
