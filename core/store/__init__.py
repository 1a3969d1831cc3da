"""The store: the only code that issues SQL. It hands out plain frozen records, never ORM rows.

store = Store("postgresql://…" or "sqlite:///…")   # the schema comes from the migrations
job = store.create_job(spec); store.mark_enqueued(job.id)
"""

from core.store.store import Store
from core.store.views import (
    FusedGroupView,
    GroupLease,
    InvalidCursor,
    JobExecution,
    JobNotFound,
    JobView,
    LandscapeView,
    LayerTelemetry,
    LeaseOutcome,
    LeaseResult,
    MetricSeries,
    RepublishCandidate,
    SweepView,
)

__all__ = [
    "FusedGroupView",
    "GroupLease",
    "InvalidCursor",
    "JobExecution",
    "JobNotFound",
    "JobView",
    "LandscapeView",
    "LayerTelemetry",
    "LeaseOutcome",
    "LeaseResult",
    "MetricSeries",
    "RepublishCandidate",
    "Store",
    "SweepView",
]
