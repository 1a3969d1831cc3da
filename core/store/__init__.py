"""The store: the only code that issues SQL. It hands out plain frozen records, never ORM rows.

store = Store("postgresql://…" or "sqlite:///…")   # the schema comes from the migrations
job = store.create_job(spec); store.mark_enqueued(job.id)
"""

from core.store.store import Store
from core.store.views import (
    Crossing,
    FusedGroupView,
    GroupLease,
    InvalidCursor,
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
    SweepView,
)

__all__ = [
    "Crossing",
    "FusedGroupView",
    "GroupLease",
    "InvalidCursor",
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
    "SweepView",
]
