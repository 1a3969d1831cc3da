"""Every metric point of jobs, or of a whole sweep, into one CSV or Parquet file.

The service streams each job's points as CSV (`GET /v1/jobs/{id}/metrics?format=csv`); a CSV export copies
those lines through as they arrive (memory stays bounded however many points there are), adding the job's
grid values and seed as columns for a sweep. Parquet needs pandas and pyarrow (`pip install pyarrow`).
"""

from __future__ import annotations

import csv
import importlib
import io
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from bnlab.errors import BnlabError
from bnlab.frames import flatten, pandas
from bnlab.transport import Transport

FORMATS = ("csv", "parquet")


def metric_lines(http: Transport, job_id: str, names: Sequence[str] | None = None) -> Iterator[str]:
    """The job's points as CSV lines (`job_id,name,step,value`, the header first), as they arrive."""
    params = {"format": "csv", "name": list(names) if names else None}
    with http.stream(f"/v1/jobs/{job_id}/metrics", params) as answer:
        yield from answer.iter_lines()


def metric_points(
    http: Transport, job_id: str, names: Sequence[str] | None = None
) -> Iterator[tuple[str, str, int, float]]:
    """The job's points as (job, name, step, value), NaN where the value was not finite."""
    lines = metric_lines(http, job_id, names)
    next(lines)  # the header
    for job, name, step, value in csv.reader(lines):
        yield job, name, int(step), float(value) if value else math.nan


def sweep_columns(http: Transport, sweep_id: str) -> tuple[list[str], dict[str, list[Any]]]:
    """The sweep's grid fields and seed, and per job (in grid order) their values: the extra columns."""
    sweep = http.get(f"/v1/sweeps/{sweep_id}")
    fields = [*sweep["grid"], "seed"]
    extra: dict[str, list[Any]] = {}
    for job_id in sweep["job_ids"]:
        spec = flatten(http.get(f"/v1/jobs/{job_id}")["spec"])
        extra[job_id] = [spec.get(field) for field in fields]
    return fields, extra


def export_metrics(
    http: Transport,
    path: Path,
    job_ids: Sequence[str] = (),
    sweep_id: str | None = None,
    file_format: str = "csv",
    names: Sequence[str] | None = None,
) -> int:
    """Writes every point of the jobs (or of the sweep's jobs, with its grid values and seed as columns)
    to `path`; returns how many points. Nothing is written when a job is unknown."""
    if file_format not in FORMATS:
        raise BnlabError(f"Unknown export format {file_format!r}: use csv or parquet.")
    if file_format == "parquet" and not _has_pyarrow():
        raise BnlabError("Parquet export needs pyarrow: pip install pyarrow (or use --format csv).")
    fields: list[str] = []
    extra: dict[str, list[Any]] = {}
    if sweep_id is not None:
        fields, extra = sweep_columns(http, sweep_id)
        job_ids = [*job_ids, *extra]
    job_ids = list(dict.fromkeys(job_ids))
    if not job_ids:
        raise BnlabError("Nothing to export: name jobs, or a sweep with --sweep.")
    for job_id in job_ids:
        http.get(f"/v1/jobs/{job_id}")  # an unknown id fails here, before the file is touched
    if file_format == "csv":
        return _write_csv(http, path, job_ids, fields, extra, names)
    return _write_parquet(http, path, job_ids, fields, extra, names)


def _has_pyarrow() -> bool:
    try:
        importlib.import_module("pyarrow")
    except ImportError:
        return False
    return True


def _rows(
    http: Transport, job_id: str, extra: Sequence[Any], names: Sequence[str] | None
) -> Iterator[list[Any]]:
    lines = metric_lines(http, job_id, names)
    next(lines)  # the header
    for row in csv.reader(lines):
        yield [*row, *extra]


def _write_csv(
    http: Transport,
    path: Path,
    job_ids: Sequence[str],
    fields: Sequence[str],
    extra: Mapping[str, list[Any]],
    names: Sequence[str] | None,
) -> int:
    points = 0
    with path.open("w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["job_id", "name", "step", "value", *fields])
        for job_id in job_ids:
            for row in _rows(http, job_id, extra.get(job_id, []), names):
                writer.writerow(row)
                points += 1
    return points


def _write_parquet(
    http: Transport,
    path: Path,
    job_ids: Sequence[str],
    fields: Sequence[str],
    extra: Mapping[str, list[Any]],
    names: Sequence[str] | None,
) -> int:
    pd = pandas()
    parts = []
    for job_id in job_ids:
        text = "\n".join(metric_lines(http, job_id, names))
        part = pd.read_csv(
            io.StringIO(text), dtype={"job_id": str, "name": str, "step": "int64", "value": float}
        )
        for field, value in zip(fields, extra.get(job_id, []), strict=True):
            part[field] = [value] * len(part)
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    frame.to_parquet(path, index=False)
    return len(frame)
