"""CSV answers of `GET /v1/jobs/{id}/metrics` and `GET /v1/compare` (`?format=csv` or `Accept: text/csv`),
streamed: a job's points are read from the store a chunk of steps at a time and written out as they come,
so memory stays bounded however many points a job has. A value that was not finite is an empty cell.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from typing import Annotated, Any, Literal

from fastapi import Query, Request
from fastapi.responses import StreamingResponse

from core.store import StoreInterface

CSV_MEDIA_TYPE = "text/csv"
METRIC_COLUMNS = ("job_id", "name", "step", "value")
# Evaluation steps per store read: each read is one query, and what it returns is written out at once.
STEPS_PER_READ = 2000

FormatQuery = Annotated[
    Literal["json", "csv"] | None,
    Query(description="csv streams the answer as CSV (as `Accept: text/csv` does); json by default"),
]


def csv_answer(description: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI entry of a route's 200 answer that is also CSV."""
    return {200: {"description": description, "content": {CSV_MEDIA_TYPE: {"schema": {"type": "string"}}}}}


def wants_csv(request: Request, answer_format: str | None) -> bool:
    """`format` decides when given; otherwise an Accept header that names text/csv."""
    if answer_format is not None:
        return answer_format == "csv"
    return CSV_MEDIA_TYPE in request.headers.get("accept", "")


def csv_response(lines: Iterable[str], filename: str) -> StreamingResponse:
    return StreamingResponse(
        iter(lines),
        media_type=f"{CSV_MEDIA_TYPE}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def csv_line(values: Sequence[object]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(["" if value is None else value for value in values])
    return buffer.getvalue()


def metric_lines(store: StoreInterface, job_id: str, names: Sequence[str] | None) -> Iterator[str]:
    """Every point of the job's series (all of them when `names` is None), in step order then by name,
    at full resolution: one store read per STEPS_PER_READ evaluation steps."""
    yield csv_line(METRIC_COLUMNS)
    wanted = set(names) if names else None
    after_step = -1
    while True:
        chunk = store.metric_steps_after(job_id, after_step, STEPS_PER_READ)
        if not chunk:
            return
        lines = [
            csv_line((job_id, name, point.step, value))
            for point in chunk
            for name, value in point.values.items()
            if wanted is None or name in wanted
        ]
        yield "".join(lines)
        after_step = chunk[-1].step


def flat_fields(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested spec fields as dotted names: {"architecture": {"hidden": h}} → {"architecture.hidden": h}."""
    flat: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict):
            flat.update(flat_fields(item, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = item
    return flat


def table_lines(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> Iterator[str]:
    """A header, then one line per row in `columns` order (a missing value is an empty cell)."""
    yield csv_line(columns)
    for row in rows:
        yield csv_line([row.get(column) for column in columns])
