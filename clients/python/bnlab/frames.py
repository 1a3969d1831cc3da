"""The service's JSON answers as pandas DataFrames. pandas is optional (`pip install 'bnlab[pandas]'`):
it is imported when a DataFrame is first asked for, and its absence is one clear error."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bnlab.errors import BnlabError

METRIC_COLUMNS = ["job", "name", "step", "value"]
STATISTIC_PARTS = ("n", "mean", "std", "ci_low", "ci_high", "ci_method")


def pandas() -> Any:
    """The pandas module, or a BnlabError that says how to install it."""
    try:
        return importlib.import_module("pandas")
    except ModuleNotFoundError:
        raise BnlabError("DataFrames need pandas: pip install 'bnlab[pandas]'.") from None


def flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested spec as dotted columns: {"architecture": {"hidden": [16]}} → {"architecture.hidden": [16]}."""
    flat: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, Mapping):
            flat.update(flatten(item, f"{name}."))
        else:
            flat[name] = item
    return flat


def metrics_frame(rows: Iterable[tuple[Any, ...]], specs: Mapping[str, Mapping[str, Any]]) -> Any:
    """Long-format (job, name, step, value) rows as a DataFrame; with `specs` (job id → flattened spec
    fields), one column per field."""
    pd = pandas()
    frame = pd.DataFrame(list(rows), columns=METRIC_COLUMNS)
    frame = frame.astype({"job": "object", "name": "object", "step": "int64", "value": "float64"})
    fields = sorted({field for spec in specs.values() for field in spec})
    for field in fields:
        frame[field] = [_cell(specs[job].get(field)) for job in frame["job"]]
    return frame


def _cell(value: Any) -> Any:
    """A list (hidden sizes) as a tuple, so that the column can be grouped on."""
    return tuple(value) if isinstance(value, list) else value


def pick_fields(spec: Mapping[str, Any], fields: bool | Sequence[str]) -> dict[str, Any]:
    """The spec columns asked for: all leaf fields (True) or the named ones (a list)."""
    flat = flatten(spec)
    if fields is True:
        return flat
    if not fields:
        return {}
    unknown = [field for field in fields if field not in flat]
    if unknown:
        raise BnlabError(f"No spec field named {', '.join(unknown)} (known: {', '.join(sorted(flat))}).")
    return {field: flat[field] for field in fields}


def statistic_columns(name: str, statistic: Mapping[str, Any] | None) -> dict[str, Any]:
    """An aggregate {"n", "mean", "std", "ci95": [low, high], "ci_method"} as `name_mean`, … columns."""
    statistic = statistic or {}
    interval = statistic.get("ci95") or [None, None]
    parts = {
        "n": statistic.get("n"),
        "mean": statistic.get("mean"),
        "std": statistic.get("std"),
        "ci_low": interval[0],
        "ci_high": interval[1],
        "ci_method": statistic.get("ci_method"),
    }
    return {f"{name}_{part}": parts[part] for part in STATISTIC_PARTS}


def sweep_frame(sweep: Mapping[str, Any]) -> Any:
    """`GET /v1/sweeps/{id}`'s grid points, one row each: the grid values, then the counts and aggregates.
    An axis whose values are objects (`bn_noise`) is dotted into its fields (`bn_noise.mean_std`, … ; a
    point without noise has them empty), as `metrics(spec=...)` names them, so that rows group."""
    rows = []
    for point in sweep["points"]:
        row: dict[str, Any] = {key: _cell(value) for key, value in flatten(point["point"]).items()}
        row.update(
            jobs=len(point["job_ids"]),
            done=point["done"],
            diverged=point["diverged"],
            reached_target=point["reached_target"],
        )
        for name in ("final_accuracy", "best_accuracy", "steps_to_target"):
            row.update(statistic_columns(name, point.get(name)))
        rows.append(row)
    return pandas().DataFrame(rows)


COMPARE_COLUMNS = (
    "id",
    "name",
    "status",
    "steps",
    "eval_every",
    "final",
    "best",
    "steps_to_target",
    "seconds_to_target",
    "speedup_vs_baseline",
    "speedup_is_lower_bound",
    "diverged_at_step",
)


def compare_frame(comparison: Mapping[str, Any]) -> Any:
    """`GET /v1/compare`'s jobs, one row each, with each differing spec field as a `spec.<field>` column and
    each hidden layer's gradient-based ICS (medians over the run) as `ics.layer<N>.<figure>` columns, as
    the CSV export names them (empty for a job run without telemetry)."""
    rows = []
    for job in comparison["jobs"]:
        row = {column: job.get(column) for column in COMPARE_COLUMNS}
        row.update({f"spec.{field}": _cell(value) for field, value in flatten(job["spec_diff"]).items()})
        for layer in job.get("ics") or ():
            for figure in ("median_gradient_change", "median_gradient_cosine", "probes"):
                row[f"ics.layer{layer['layer']}.{figure}"] = layer[figure]
        rows.append(row)
    return pandas().DataFrame(rows)


def telemetry_frame(job_id: str, telemetry: Mapping[str, Any]) -> Any:
    """`GET /v1/jobs/{id}/telemetry` as one row per (layer, step) with a column per statistic the service
    sends: the Fig. 1 percentiles, mean, std, saturated fraction, gradient norm and the gradient-based ICS
    (`ics_gradient_change`, `ics_gradient_cosine`)."""
    rows = []
    for layer in telemetry["layers"]:
        statistics = [key for key in layer if key not in {"layer", "steps"}]
        for index, step in enumerate(layer["steps"]):
            row = {"job": job_id, "layer": layer["layer"], "step": step}
            row.update({key: layer[key][index] for key in statistics})
            rows.append(row)
    return pandas().DataFrame(rows)
