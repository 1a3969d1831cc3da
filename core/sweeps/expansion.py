"""Expanding a sweep request into job specs: every grid point × every seed, validated whole before
anything is created, each problem located on the grid axis and value that caused it. Torch-free.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from core.spec import MAX_NAME_LENGTH, JobSpec
from core.sweeps.request import MAX_AXIS_VALUES, SweepRequest

# The spec fields a dotted path may reach into: `architecture.hidden`, `bn_noise.scale_std` (a noise field
# on a base without noise starts from the other's default).
NESTED_FIELDS = frozenset({"architecture", "bn_noise"})


class SweepValidationError(ValueError):
    """The sweep as a whole is not valid; `errors` has FastAPI's 422 `detail` item shape."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(str(error["msg"]) for error in errors))
        self.errors = errors


@dataclass(frozen=True)
class SweepJob:
    """One job of an expanded sweep: which grid point (axis → value as validated) and seed it runs."""

    point: dict[str, Any]
    seed: int
    spec: JobSpec


def value_at(spec: Mapping[str, Any], axis: str) -> Any:
    """The value a (JSON) spec has at a dotted axis path; None where the path does not exist."""
    value: Any = spec
    for part in axis.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def point_label(point: Mapping[str, Any]) -> str:
    """`learning_rate=0.1, batch_norm=true`: a grid point as a user reads it."""
    return ", ".join(f"{axis}={json.dumps(value, separators=(',', ':'))}" for axis, value in point.items())


def expand_sweep(request: SweepRequest, max_size: int) -> list[SweepJob]:
    """Every grid point × every seed as a validated job spec, in grid order (first axis slowest).

    Nothing is returned unless the whole product is valid: the size cap, the axes, and every grid point
    validated as a `JobSpec`. Raises SweepValidationError listing each problem once, naming the grid point
    and field (for a bad value, `loc` is `body.grid.<axis>.<index of the value>`).
    """
    _check_shape(request, max_size)
    axes = list(request.grid)
    base = request.base.model_dump(mode="json")
    seeds = request.replicate_seeds()
    prefix = request.name or request.base.name
    errors: dict[tuple[Any, ...], dict[str, Any]] = {}
    jobs: list[SweepJob] = []
    for value_indices in itertools.product(*(range(len(request.grid[axis])) for axis in axes)):
        raw_point = {axis: request.grid[axis][index] for axis, index in zip(axes, value_indices, strict=True)}
        try:
            spec = JobSpec.model_validate(_with_point(base, raw_point))
        except ValidationError as invalid:
            for error in _point_errors(invalid, raw_point, dict(zip(axes, value_indices, strict=True))):
                errors.setdefault((tuple(error["loc"]), error["type"]), error)
            continue
        validated = spec.model_dump(mode="json")
        point = {axis: value_at(validated, axis) for axis in axes}
        for seed in seeds:
            name = spec.name if "name" in request.grid else _job_name(prefix, point, seed)
            jobs.append(SweepJob(point, seed, spec.model_copy(update={"seed": seed, "name": name})))
    if errors:
        raise SweepValidationError(list(errors.values()))
    return jobs


def _check_shape(request: SweepRequest, max_size: int) -> None:
    """Problems of the sweep as a whole, found before any point is built."""
    errors: list[dict[str, Any]] = []
    for axis, values in request.grid.items():
        loc = ["body", "grid", axis]
        head, _, rest = axis.partition(".")
        if head == "seed":
            errors.append(_error(loc, "seeds are replicates, not a grid axis: list them in `seeds`", axis))
        elif rest and head not in NESTED_FIELDS:
            errors.append(_error(loc, f"only {' and '.join(sorted(NESTED_FIELDS))} have nested fields", axis))
        if not values:
            errors.append(_error(loc, "a grid axis needs at least one value", values, "too_short"))
        elif len(values) > MAX_AXIS_VALUES:
            errors.append(_error(loc, f"a grid axis takes at most {MAX_AXIS_VALUES} values", len(values)))
        elif len({json.dumps(value, sort_keys=True) for value in values}) < len(values):
            errors.append(
                _error(loc, "a grid axis lists a value twice (it would run the same jobs twice)", values)
            )
    if request.seeds is not None and len(set(request.seeds)) < len(request.seeds):
        errors.append(_error(["body", "seeds"], "a seed is listed twice", request.seeds))
    size = request.size()
    if size > max_size:
        errors.append(
            _error(
                ["body", "grid"], f"the sweep would create {size} jobs; at most {max_size} are allowed", size
            )
        )
    if errors:
        raise SweepValidationError(errors)


def _with_point(base: Mapping[str, Any], point: Mapping[str, Any]) -> dict[str, Any]:
    """The base spec (JSON) with each axis of the grid point set to its value."""
    spec = deepcopy(dict(base))
    # batch_norm and normalization say one thing two ways (`core.spec`): an axis setting one decides both.
    for field, twin in (("batch_norm", "normalization"), ("normalization", "batch_norm")):
        if field in point and twin not in point:
            spec.pop(twin, None)
    for axis, value in point.items():
        head, _, rest = axis.partition(".")
        if rest:
            nested = spec.get(head)
            spec[head] = {**nested, rest: deepcopy(value)} if isinstance(nested, Mapping) else {rest: value}
        else:
            spec[head] = deepcopy(value)
    return spec


def _point_errors(
    invalid: ValidationError, point: Mapping[str, Any], value_indices: Mapping[str, int]
) -> list[dict[str, Any]]:
    """The spec's validation errors of one grid point, each located on the grid axis that caused it."""
    found = []
    for error in invalid.errors():
        field_path = _field_path(error["loc"])
        axis = next((axis for axis in point if _overlaps(axis, field_path)), None)
        loc: list[Any] = ["body", "grid"] if axis is None else ["body", "grid", axis, value_indices[axis]]
        message = f"grid point {point_label(point)}: {field_path or 'spec'}: {error['msg']}"
        found.append(_error(loc, message, error.get("input"), error["type"]))
    return found


def _field_path(loc: Sequence[int | str]) -> str:
    """`architecture.hidden.0` from pydantic's loc (which also names the architecture's kind tag)."""
    parts = [str(part) for part in loc]
    if len(parts) > 1 and parts[0] in NESTED_FIELDS and parts[1] in {"mlp", "cnn"}:
        del parts[1]
    return ".".join(parts)


def _overlaps(axis: str, field_path: str) -> bool:
    """Whether the field an error is about lies on (or contains) the axis."""
    return field_path == axis or field_path.startswith(axis + ".") or axis.startswith(field_path + ".")


def _error(loc: list[Any], message: str, value: Any, error_type: str = "value_error") -> dict[str, Any]:
    return {"loc": loc, "msg": message, "type": error_type, "input": _json_safe(value)}


def _json_safe(value: Any) -> Any:
    """The offending input as JSON can carry it (a NaN learning rate must not break the 422 itself)."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        return repr(value)


def _job_name(prefix: str, point: Mapping[str, Any], seed: int) -> str:
    parts = [prefix, point_label(point), f"seed={seed}"]
    return " ".join(part for part in parts if part)[:MAX_NAME_LENGTH]
