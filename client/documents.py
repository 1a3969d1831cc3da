"""Spec and sweep files for the CLI: reading YAML or JSON, and `--set key=value` overrides.

Keys are dotted paths into the document (`architecture.hidden=[50, 50]`); values are read as YAML, so
`1.0` is a number, `true` a boolean, `[50, 50]` a list and `sigmoid` a string. Validation is left to the
service: its 422 names the field and what is wrong with it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml


class DocumentError(ValueError):
    """A spec file or an override that cannot be used, described in one line."""


def load_document(path: Path) -> dict[str, Any]:
    """A YAML or JSON file (chosen by its suffix; YAML otherwise) holding one mapping."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise DocumentError(f"Cannot read {path}: {error.strerror or error}.") from None
    try:
        document = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as error:
        raise DocumentError(f"{path} is not valid JSON: {error.msg} (line {error.lineno}).") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or "cannot be parsed"
        raise DocumentError(f"{path} is not valid YAML: {problem}{where}.") from None
    if not isinstance(document, dict):
        raise DocumentError(f"{path} must hold a mapping of fields (like `learning_rate: 0.1`).")
    return document


def refuse_other_kind(document: dict[str, Any], path: Path, wanted: str) -> dict[str, Any]:
    """`document` when it is a `wanted` ("job" or "sweep") file; a sweep file given where a job spec is
    wanted (or the other way round) is a DocumentError naming the command that takes it, rather than the
    service's wall of field errors."""
    is_sweep = "base" in document and "architecture" not in document
    if wanted == "job" and is_sweep:
        raise DocumentError(f"{path} is a sweep file (base, grid, seeds): use `bnlab sweep submit {path}`.")
    if wanted == "sweep" and not is_sweep and "architecture" in document:
        raise DocumentError(f"{path} is a job spec file: use `bnlab submit {path}`.")
    return document


def parse_assignment(assignment: str) -> tuple[list[str], Any]:
    """`architecture.hidden=[50, 50]` → (["architecture", "hidden"], [50, 50])."""
    key, separator, raw_value = assignment.partition("=")
    path = key.strip().split(".")
    if not separator or not all(path):
        raise DocumentError(f"--set {assignment!r} must look like key=value (e.g. learning_rate=1.0).")
    if not raw_value.strip():
        return path, ""
    try:
        value = yaml.safe_load(raw_value)
    except yaml.YAMLError:
        raise DocumentError(f"--set {assignment!r}: the value is not a valid YAML value.") from None
    return path, value


def apply_assignments(document: dict[str, Any], assignments: list[str]) -> dict[str, Any]:
    """A copy of `document` with each `key=value` set; missing intermediate mappings are created."""
    updated = copy.deepcopy(document)
    for assignment in assignments:
        path, value = parse_assignment(assignment)
        target = updated
        for depth, key in enumerate(path[:-1]):
            child = target.setdefault(key, {})
            if not isinstance(child, dict):
                dotted = ".".join(path[: depth + 1])
                raise DocumentError(f"--set {assignment!r}: {dotted} is not a mapping, so it has no fields.")
            target = child
        target[path[-1]] = value
    return updated
