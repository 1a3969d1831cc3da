"""The store: the only code that issues SQL. It hands out plain frozen records, never ORM rows.

store = Store("postgresql://…" or "sqlite:///…")   # the schema comes from the migrations
job = store.create_job(spec); store.mark_enqueued(job.id)

What it promises is `StoreInterface` (`interface.py`, one Protocol per part); code that uses a store
depends on that, and only the code that creates one names `Store`. Each part lives in a module of its own
(`jobs`, `sweeps`, `fused_groups`, `leases`, `republish`, `series`, `targets`, `events`, `workers`,
`operations`, `idempotency`, `housekeeping`, `datasets`; the metric rollup in `rollup` and `rollup_reads`;
PostgreSQL change notifications in `notifications`; the supporting parts' Protocols in
`interface_support`), the records it hands out in `views`, and the conversions between rows and records
in `conversions`.
"""

from core.store.interface import MAX_METRIC_STEPS_PER_READ, StoreInterface
from core.store.interface_support import DatasetDeleteOutcome, DeleteOutcome
from core.store.store import Store
from core.store.views import (
    Crossing,
    DatasetView,
    FusedGroupView,
    GroupLease,
    InvalidCursor,
    JobCount,
    JobEventState,
    JobExecution,
    JobNotFound,
    JobView,
    LandscapeView,
    LayerTelemetry,
    LeaseOutcome,
    LeaseResult,
    MetricSeries,
    MetricStep,
    RepublishCandidate,
    SeriesWithCrossing,
    StatusChange,
    SweepProgress,
    SweepView,
    WorkerTraining,
    WorkerView,
)

__all__ = [
    "MAX_METRIC_STEPS_PER_READ",
    "Crossing",
    "DatasetDeleteOutcome",
    "DatasetView",
    "DeleteOutcome",
    "FusedGroupView",
    "GroupLease",
    "InvalidCursor",
    "JobCount",
    "JobEventState",
    "JobExecution",
    "JobNotFound",
    "JobView",
    "LandscapeView",
    "LayerTelemetry",
    "LeaseOutcome",
    "LeaseResult",
    "MetricSeries",
    "MetricStep",
    "RepublishCandidate",
    "SeriesWithCrossing",
    "StatusChange",
    "Store",
    "StoreInterface",
    "SweepProgress",
    "SweepView",
    "WorkerTraining",
    "WorkerView",
]
