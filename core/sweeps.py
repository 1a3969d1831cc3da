"""Sweeps: a base spec, a grid over any spec fields and replicate seeds, expanded into job specs and
validated whole before anything is created; then the jobs' outcomes aggregated per grid point.

Grid axes name spec fields; a dotted path reaches into the architecture (`architecture.activation`,
`architecture.hidden`), and `architecture` itself may be an axis whose values are whole architectures.
Seeds are not a grid axis: they are the replicates every grid point is run with. Torch-free.
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints, ValidationError

from core.fusion import fusion_groups
from core.results import finite_or_none
from core.spec import MAX_NAME_LENGTH, JobSpec, StrictModel

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "diverged", "cancelled")
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "diverged", "cancelled"})
MAX_GRID_AXES = 8
MAX_AXIS_VALUES = 256  # the sweep size cap (settings.max_sweep_size) bounds the whole product anyway
MAX_SEEDS = 256
NESTED_FIELDS = frozenset({"architecture"})  # the spec fields a dotted path may reach into
Execution = Literal["fused", "separate"]
ExecutionUsed = Literal["fused", "separate", "mixed"]  # mixed: fused groups and jobs on their own

AxisName = Annotated[str, StringConstraints(pattern=r"^[a-z_]+(\.[a-z_]+)?$", max_length=64)]
Seed = Annotated[int, Field(ge=0, le=2**31 - 1)]


class SweepRequest(StrictModel):
    """What a user submits: every grid point × every seed becomes one job."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "lr-x-bn",
                    "base": {
                        "architecture": {"kind": "mlp", "hidden": [100, 100, 100], "activation": "sigmoid"},
                        "batch_norm": True,
                        "learning_rate": 0.1,
                        "dropout": 0.0,
                        "steps": 500,
                        "eval_every": 10,
                        "target_accuracy": 0.9,
                    },
                    "grid": {"learning_rate": [0.01, 0.1, 1.0], "batch_norm": [True, False]},
                    "seeds": [0, 1, 2],
                    "execution": "fused",
                }
            ]
        },
    )

    name: str = Field("", max_length=MAX_NAME_LENGTH)
    base: JobSpec = Field(description="the spec every grid point starts from")
    grid: dict[AxisName, list[Any]] = Field(
        default_factory=dict,
        max_length=MAX_GRID_AXES,
        description="spec field (dotted into `architecture`) → the values it takes; the sweep is the product",
    )
    seeds: list[Seed] | None = Field(
        None,
        min_length=1,
        max_length=MAX_SEEDS,
        description="replicate seeds run at every grid point; default: the base spec's seed",
    )
    execution: Execution = Field(
        "fused",
        description="fused: one task trains a group of grid points as stacked models; separate: a task a job",
    )

    def replicate_seeds(self) -> list[int]:
        return list(self.seeds) if self.seeds is not None else [self.base.seed]

    def size(self) -> int:
        """How many jobs the sweep creates, computed without expanding it."""
        return math.prod(len(values) for values in self.grid.values()) * len(self.replicate_seeds())


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
            errors.append(_error(loc, f"only {', '.join(sorted(NESTED_FIELDS))} has nested fields", axis))
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


# --- aggregation over seeds -------------------------------------------------------------------------


@dataclass(frozen=True)
class JobOutcome:
    """What aggregation needs of one job of a sweep (built from the store's job view)."""

    job_id: str
    status: str
    spec: Mapping[str, Any]
    final_accuracy: float | None = None
    best_accuracy: float | None = None
    steps_to_target: int | None = None


@dataclass(frozen=True)
class Stat:
    """Mean ± sample standard deviation over the `count` jobs that have the value (std needs two)."""

    mean: float | None
    std: float | None
    count: int

    @classmethod
    def over(cls, values: Iterable[float | None]) -> Stat:
        numbers = [number for value in values if (number := finite_or_none(value)) is not None]
        if not numbers:
            return cls(None, None, 0)
        std = statistics.stdev(numbers) if len(numbers) > 1 else None
        return cls(statistics.fmean(numbers), std, len(numbers))


@dataclass(frozen=True)
class GridPointSummary:
    """One grid point aggregated over its seeds."""

    point: dict[str, Any]
    job_ids: list[str]
    seeds: list[int]
    status_counts: dict[str, int]
    done: int
    diverged: int
    reached_target: int
    final_accuracy: Stat
    best_accuracy: Stat
    steps_to_target: Stat


def status_counts(statuses: Iterable[str]) -> dict[str, int]:
    """How many jobs are in each status (every status listed, zero included)."""
    counts = dict.fromkeys(JOB_STATUSES, 0)
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return counts


def aggregate(outcomes: Sequence[JobOutcome], axes: Sequence[str]) -> list[GridPointSummary]:
    """The jobs grouped by their values on `axes` (read from each job's spec), aggregated over seeds.

    Groups come in the order their first job appears (pass jobs in creation order to get grid order).
    Means are over the jobs that have the figure: a diverged job without a final accuracy, or a job that
    never met its target, is counted (`diverged`, `reached_target`) rather than averaged as a zero.
    """
    groups: dict[tuple[str, ...], list[JobOutcome]] = {}
    for outcome in outcomes:
        key = tuple(json.dumps(value_at(outcome.spec, axis), sort_keys=True) for axis in axes)
        groups.setdefault(key, []).append(outcome)
    summaries = []
    for members in groups.values():
        statuses = [member.status for member in members]
        summaries.append(
            GridPointSummary(
                point={axis: value_at(members[0].spec, axis) for axis in axes},
                job_ids=[member.job_id for member in members],
                seeds=[int(member.spec.get("seed", 0)) for member in members],
                status_counts=status_counts(statuses),
                done=sum(status in TERMINAL_STATUSES for status in statuses),
                diverged=statuses.count("diverged"),
                reached_target=sum(member.steps_to_target is not None for member in members),
                final_accuracy=Stat.over(member.final_accuracy for member in members),
                best_accuracy=Stat.over(member.best_accuracy for member in members),
                steps_to_target=Stat.over(
                    None if member.steps_to_target is None else float(member.steps_to_target)
                    for member in members
                ),
            )
        )
    return summaries


@dataclass(frozen=True)
class SweepHeatmap:
    """Mean final accuracy over two grid axes (rows: `y_axis`, columns: `x_axis`); None where no job has
    a final accuracy. `y_axis` is None for a one-axis sweep (a single row)."""

    x_axis: str
    y_axis: str | None
    x_values: list[Any]
    y_values: list[Any]
    mean_final_accuracy: list[list[float | None]]
    diverged: list[list[int]]
    jobs: list[list[int]]


def heatmap(outcomes: Sequence[JobOutcome], x_axis: str, y_axis: str | None) -> SweepHeatmap:
    """The sweep's jobs on an x × y grid; jobs differing on other axes share a cell (their mean)."""
    axes = [x_axis] if y_axis is None else [x_axis, y_axis]
    summaries = aggregate(outcomes, axes)
    x_values = _distinct(summary.point[x_axis] for summary in summaries)
    y_values = [None] if y_axis is None else _distinct(summary.point[y_axis] for summary in summaries)
    by_cell = {
        (_key(summary.point[x_axis]), _key(summary.point[y_axis] if y_axis else None)): summary
        for summary in summaries
    }
    means: list[list[float | None]] = []
    diverged: list[list[int]] = []
    jobs: list[list[int]] = []
    for y_value in y_values:
        row = [by_cell.get((_key(x_value), _key(y_value))) for x_value in x_values]
        means.append([cell.final_accuracy.mean if cell else None for cell in row])
        diverged.append([cell.diverged if cell else 0 for cell in row])
        jobs.append([len(cell.job_ids) if cell else 0 for cell in row])
    return SweepHeatmap(x_axis, y_axis, x_values, y_values, means, diverged, jobs)


def _as_float(value: int | None) -> float | None:
    return None if value is None else float(value)


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _distinct(values: Iterable[Any]) -> list[Any]:
    """Values in first-seen order, numbers sorted ascending (a learning-rate axis reads left to right)."""
    seen: dict[str, Any] = {}
    for value in values:
        seen.setdefault(_key(value), value)
    distinct = list(seen.values())
    if all(isinstance(value, int | float) and not isinstance(value, bool) for value in distinct):
        return sorted(distinct)
    return distinct


def fused_groups(
    specs: Sequence[JobSpec], execution: str, max_group_size: int, max_gpu_group_size: int | None = None
) -> list[list[int]]:
    """The sweep's jobs that one task each trains together, as indices into `specs`, one list per group of
    two or more (grouped by `core.fusion.fusion_groups`: a BN-on and a BN-off group are two groups, a group
    above `max_group_size` — `max_gpu_group_size` for GPU specs — is split evenly). None for a `separate`
    sweep; every job in no group runs as a task of its own."""
    if execution != "fused":
        return []
    return [group for group in fusion_groups(specs, max_group_size, max_gpu_group_size) if len(group) > 1]


def how_executed(requested: str, group_sizes: Sequence[int], size: int) -> tuple[ExecutionUsed, str]:
    """(how the sweep's `size` jobs run, a note saying so), given the sizes of its fused groups."""
    fused = sum(group_sizes)
    alone = size - fused
    if requested != "fused":
        return "separate", "separate requested: each job runs as its own task"
    if not group_sizes:
        return (
            "separate",
            "fused requested, but no two jobs can train together (fused training covers MLPs with torch's "
            "batch norm or none, sharing architecture, optimizer kind, batch size "
            "and schedule), so each job runs as its own task",
        )
    groups = f"{len(group_sizes)} fused group{'s' if len(group_sizes) > 1 else ''}"
    note = (
        f"{fused} jobs in {groups} of {', '.join(map(str, group_sizes))}: one task trains each group's jobs "
        "together as stacked models"
    )
    if alone == 0:
        return "fused", note
    if alone == 1:
        return "mixed", f"{note}; 1 job fuses with no other and runs as its own task"
    return "mixed", f"{note}; {alone} jobs fuse with no other and run as one task each"
