"""The example job and sweep files the README walks through are valid as they stand, and the digits pair
are twins: the same experiment with and without batch norm."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from core.spec import JobSpec
from core.sweeps import SweepRequest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
JOB_FILES = sorted((EXAMPLES / "jobs").glob("*.yaml"))
SWEEP_FILES = sorted((EXAMPLES / "sweeps").glob("*.yaml"))
MAX_EXAMPLE_SWEEP_SIZE = 8  # small enough to run on a laptop's CPU while reading the README


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return document


@pytest.mark.parametrize("path", JOB_FILES, ids=lambda path: path.name)
def test_each_example_job_is_a_valid_spec(path: Path) -> None:
    spec = JobSpec.model_validate(load(path))
    assert spec.name == path.stem


@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda path: path.name)
def test_each_example_sweep_is_valid_and_small(path: Path) -> None:
    sweep = SweepRequest.model_validate(load(path))
    assert 1 < sweep.size() <= MAX_EXAMPLE_SWEEP_SIZE


def test_the_digits_pair_differ_only_in_batch_norm_and_name() -> None:
    with_bn, without_bn = (
        load(EXAMPLES / "jobs" / "digits-bn.yaml"),
        load(EXAMPLES / "jobs" / "digits-no-bn.yaml"),
    )
    assert (with_bn.pop("batch_norm"), without_bn.pop("batch_norm")) == (True, False)
    assert (with_bn.pop("name"), without_bn.pop("name")) == ("digits-bn", "digits-no-bn")
    assert with_bn == without_bn
