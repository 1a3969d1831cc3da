"""Rows to records and records to columns, in one place: every record the store hands out (`views`) is
built here from the columns a query read, and every record it is given is turned into columns here.

Non-finite floats (NaN, ±inf) are written as NULL and read back as None.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Row, RowMapping

from core.housekeeping import tags_from_column
from core.results import LandscapeRecord, Progress, Summary, TelemetryRecord, finite_or_none
from core.store.views import (
    FusedGroupView,
    JobEventState,
    JobView,
    LandscapeView,
    LayerTelemetry,
    MetricStep,
    RepublishCandidate,
    SweepView,
    WorkerTraining,
    WorkerView,
)

AnyRow = Row[*tuple[Any, ...]]  # a row of any columns

_SUMMARY_FIELDS = frozenset(field.name for field in dataclasses.fields(Summary))
TELEMETRY_STATISTICS = (
    "unit_p15",
    "unit_p50",
    "unit_p85",
    "p15",
    "p50",
    "p85",
    "mean",
    "std",
    "saturated_fraction",
    "grad_norm",
    "ics_gradient_change",
    "ics_gradient_cosine",
)
LANDSCAPE_STATISTICS = (
    "loss_range",
    "gradient_predictiveness",
    "beta_smoothness",
    "grad_norm",
    "relative_gradient_change",
)


# -- jobs -----------------------------------------------------------------------------------------------


def summary_to_json(summary: Summary) -> dict[str, Any]:
    return {
        name: finite_or_none(value) if isinstance(value, float) else value
        for name, value in dataclasses.asdict(summary).items()
    }


def summary_from_json(stored: Mapping[str, Any] | None) -> Summary | None:
    if stored is None:
        return None
    return Summary(**{name: value for name, value in stored.items() if name in _SUMMARY_FIELDS})


def progress_from_row(fields: RowMapping) -> Progress | None:
    """A job row's last progress report, None before the first (non-finite steps/s read as None)."""
    if fields["progress_step"] is None:
        return None
    return Progress(
        step=fields["progress_step"],
        steps=fields["progress_steps"],
        steps_per_second=finite_or_none(fields["steps_per_second"]),
    )


def job_view(row: AnyRow) -> JobView:
    """A row of `StoreBase._job_select()`: the job's columns, its sweep's and its fused group's."""
    fields = row._mapping
    return JobView(
        id=fields["public_id"],
        name=fields["name"],
        status=fields["status"],
        spec=fields["spec"],
        created_at=fields["created_at"],
        enqueued_at=fields["enqueued_at"],
        started_at=fields["started_at"],
        finished_at=fields["finished_at"],
        attempts=fields["attempts"],
        progress=progress_from_row(fields),
        summary=summary_from_json(fields["summary"]),
        device=fields["device"],
        error=fields["error"],
        lease_owner=fields["lease_owner"],
        heartbeat_at=fields["heartbeat_at"],
        lease_losses=fields["lease_losses"],
        cancel_requested=bool(fields["cancel_requested"]),
        sweep_id=fields["sweep_public_id"],
        execution=fields["execution"],
        fused_group=fields["fused_group_public_id"],
        fused_group_size=fields["fused_group_size"],
        tags=tags_from_column(fields["tags"]),
        note=fields["note"],
        archived=bool(fields["archived"]),
    )


def republish_candidate(row: AnyRow) -> RepublishCandidate:
    """A job row as the re-publisher read it, with its fused group's public id (None outside one)."""
    return RepublishCandidate(
        job_id=row.public_id,
        device=row.spec.get("device", "auto"),
        status=row.status,
        enqueued_at=row.enqueued_at,
        heartbeat_at=row.heartbeat_at,
        fused_group=row.fused_group,
    )


def job_event_state(fields: RowMapping) -> JobEventState:
    return JobEventState(
        id=fields["public_id"],
        status=fields["status"],
        created_at=fields["created_at"],
        started_at=fields["started_at"],
        finished_at=fields["finished_at"],
        progress=progress_from_row(fields),
        summary=summary_from_json(fields["summary"]),
        error=fields["error"],
    )


# -- sweeps ---------------------------------------------------------------------------------------------


def sweep_views(
    sweep_rows: Sequence[AnyRow],
    job_rows: Iterable[tuple[int, str, str]],
    group_member_rows: Iterable[AnyRow],
) -> list[tuple[int, SweepView]]:
    """(row id, sweep) per sweep row, in their order. `job_rows` are (sweep row id, public id, status) of
    their jobs in creation order; `group_member_rows` (sweep_id, group_public_id, size, job_public_id) of
    their fused groups' jobs, group by group, each group's jobs in training order."""
    job_ids: dict[int, list[str]] = {sweep.id: [] for sweep in sweep_rows}
    job_statuses: dict[int, dict[str, str]] = {sweep.id: {} for sweep in sweep_rows}
    groups: dict[int, dict[str, FusedGroupView]] = {sweep.id: {} for sweep in sweep_rows}
    for sweep_row_id, public_id, status in job_rows:
        job_ids[sweep_row_id].append(public_id)
        job_statuses[sweep_row_id][public_id] = status
    for member in group_member_rows:
        group = groups[member.sweep_id].setdefault(
            member.group_public_id, FusedGroupView(member.group_public_id, member.size, [])
        )
        group.job_ids.append(member.job_public_id)
    return [
        (
            sweep.id,
            SweepView(
                id=sweep.public_id,
                name=sweep.name,
                base=sweep.base,
                grid=sweep.grid,
                seeds=list(sweep.seeds),
                execution=sweep.execution,
                size=sweep.size,
                created_at=sweep.created_at,
                job_ids=job_ids[sweep.id],
                fused_groups=list(groups[sweep.id].values()),
                job_statuses=job_statuses[sweep.id],
                tags=tags_from_column(sweep.tags),
                note=sweep.note,
                archived=bool(sweep.archived),
            ),
        )
        for sweep in sweep_rows
    ]


# -- per-step series --------------------------------------------------------------------------------------


def metric_steps(rows: Iterable[tuple[int, str, float | None]]) -> list[MetricStep]:
    """(step, name, value) rows in step order, grouped by step."""
    steps: dict[int, dict[str, float | None]] = {}
    for step, name, value in rows:
        steps.setdefault(step, {})[name] = value
    return [MetricStep(step, values) for step, values in steps.items()]


def telemetry_rows(job_row_id: int, records: Iterable[TelemetryRecord]) -> list[dict[str, Any]]:
    """One row per (step, layer); the last record of a key wins."""
    rows = {
        (record.step, record.layer): {
            "job_id": job_row_id,
            "step": record.step,
            "layer": record.layer,
            **{name: finite_or_none(getattr(record, name)) for name in TELEMETRY_STATISTICS},
        }
        for record in records
    }
    return list(rows.values())


def layer_telemetry(rows: Iterable[AnyRow]) -> list[LayerTelemetry]:
    """Telemetry rows in (layer, step) order as one record per layer, each statistic a list over steps."""
    layers: dict[int, dict[str, list[Any]]] = {}
    for row in rows:
        lists = layers.setdefault(row.layer, {name: [] for name in ("steps", *TELEMETRY_STATISTICS)})
        lists["steps"].append(row.step)
        for name in TELEMETRY_STATISTICS:
            lists[name].append(getattr(row, name))
    return [LayerTelemetry(layer=layer, **lists) for layer, lists in layers.items()]


def landscape_rows(job_row_id: int, records: Iterable[LandscapeRecord]) -> list[dict[str, Any]]:
    """One row per probe step; the last record of a step wins."""
    rows = {
        record.step: {
            "job_id": job_row_id,
            "step": record.step,
            "step_sizes": [finite_or_none(size) for size in record.step_sizes],
            "losses": [finite_or_none(loss) for loss in record.losses],
            **{name: finite_or_none(getattr(record, name)) for name in LANDSCAPE_STATISTICS},
        }
        for record in records
    }
    return list(rows.values())


def landscape_view(row: AnyRow) -> LandscapeView:
    return LandscapeView(
        step=row.step,
        step_sizes=list(row.step_sizes),
        losses=list(row.losses),
        **{name: getattr(row, name) for name in LANDSCAPE_STATISTICS},
    )


# -- workers ----------------------------------------------------------------------------------------------


def worker_view(row: AnyRow) -> WorkerView:
    """A worker's row, with `alive` as the query computed it."""
    fields = row._mapping
    training = fields["training"]
    return WorkerView(
        id=fields["public_id"],
        name=fields["name"],
        host=fields["host"],
        pid=fields["pid"],
        queues=list(fields["queues"]),
        device=dict(fields["device"]),
        training=None
        if training is None
        else WorkerTraining(list(training["job_ids"]), training.get("group_id")),
        started_at=fields["started_at"],
        last_seen=fields["last_seen"],
        alive=bool(fields["alive"]),
    )
