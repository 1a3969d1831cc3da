"""A job's view with `waiting_for` filled in: for a queued job, whether any live worker consumes its queue
(`core.waiting`); null for every other status."""

from __future__ import annotations

from api.schemas import JobOut
from core.settings import Settings
from core.store import JobView, Store
from core.waiting import waiting_for


def job_out_with_waiting_for(job: JobView, store: Store, settings: Settings) -> JobOut:
    out = JobOut.model_validate(job)
    if job.status == "queued":
        live = store.live_worker_devices(settings.lease_seconds)
        out.waiting_for = waiting_for(str(job.spec.get("device", "auto")), (queues for queues, _ in live))
    return out
