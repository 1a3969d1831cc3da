"""Spec files and `--set` overrides, as `bnlab submit` reads them before anything is sent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from client.documents import DocumentError, apply_assignments, load_document, parse_assignment
from core.spec import JobSpec

PAPER_SPEC = {
    "architecture": {"kind": "mlp", "hidden": [100, 100, 100], "activation": "sigmoid"},
    "batch_norm": True,
    "learning_rate": 0.1,
    "dropout": 0.0,
}


@pytest.mark.parametrize(
    ("assignment", "path", "value"),
    [
        ("learning_rate=1.0", ["learning_rate"], 1.0),
        ("steps=200", ["steps"], 200),
        ("batch_norm=false", ["batch_norm"], False),
        ("name=bn sigmoid", ["name"], "bn sigmoid"),
        ("target_accuracy=null", ["target_accuracy"], None),
        ("architecture.hidden=[50, 50]", ["architecture", "hidden"], [50, 50]),
        ("architecture.activation=relu", ["architecture", "activation"], "relu"),
        ("name=", ["name"], ""),
        ("name=a=b", ["name"], "a=b"),
    ],
)
def test_values_are_read_as_yaml(assignment: str, path: list[str], value: object) -> None:
    assert parse_assignment(assignment) == (path, value)


def test_dotted_keys_reach_into_the_architecture_and_the_result_is_a_valid_spec() -> None:
    updated = apply_assignments(
        PAPER_SPEC, ["architecture.hidden=[50, 50]", "architecture.activation=relu", "learning_rate=1.0"]
    )
    spec = JobSpec.model_validate(updated)
    assert spec.architecture.kind == "mlp"
    assert spec.architecture.hidden == [50, 50]
    assert spec.architecture.activation == "relu"
    assert spec.learning_rate == 1.0
    assert PAPER_SPEC["architecture"]["hidden"] == [100, 100, 100], "the file's document is not changed"


def test_a_later_assignment_wins() -> None:
    assert apply_assignments(PAPER_SPEC, ["steps=10", "steps=20"])["steps"] == 20


@pytest.mark.parametrize("assignment", ["learning_rate", "=1", "architecture..hidden=1", "a.=1"])
def test_an_assignment_without_a_key_and_value_is_refused(assignment: str) -> None:
    with pytest.raises(DocumentError, match="must look like key=value"):
        apply_assignments(PAPER_SPEC, [assignment])


def test_a_field_of_a_value_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(DocumentError, match="learning_rate is not a mapping"):
        apply_assignments(PAPER_SPEC, ["learning_rate.max=3"])


def test_yaml_and_json_files_load_to_the_same_document(tmp_path: Path) -> None:
    yaml_file = tmp_path / "spec.yaml"
    json_file = tmp_path / "spec.json"
    yaml_file.write_text(yaml.safe_dump(PAPER_SPEC))
    json_file.write_text(json.dumps(PAPER_SPEC))
    assert load_document(yaml_file) == PAPER_SPEC
    assert load_document(json_file) == PAPER_SPEC


@pytest.mark.parametrize(
    ("file_name", "text", "problem"),
    [
        ("spec.yaml", "architecture: [mlp\nbatch_norm: true\n", "is not valid YAML"),
        ("spec.json", '{"batch_norm": true,}', "is not valid JSON"),
        ("spec.yaml", "- just\n- a list\n", "must hold a mapping"),
    ],
)
def test_broken_files_are_described_in_one_line(
    tmp_path: Path, file_name: str, text: str, problem: str
) -> None:
    path = tmp_path / file_name
    path.write_text(text)
    with pytest.raises(DocumentError, match=problem) as raised:
        load_document(path)
    assert "\n" not in str(raised.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match=r"Cannot read .*absent\.yaml"):
        load_document(tmp_path / "absent.yaml")
