"""A job's view with `waiting_for` filled in: for a queued job, whether any live worker consumes its queue
(`core.waiting`); null for every other status."""

from __future__ import annotations

from api.jobs.schemas import JobOut
from core.settings import Settings
from core.store import JobView, StoreInterface
from core.waiting import waiting_for


def jobs_out_with_waiting_for(jobs: list[JobView], store: StoreInterface, settings: Settings) -> list[JobOut]:
    """The views of `jobs`, reading the live workers once (and not at all when none is queued)."""
    outs = [JobOut.model_validate(job) for job in jobs]
    queued = [(job, out) for job, out in zip(jobs, outs, strict=True) if job.status == "queued"]
    if queued:
        live_queues = [queues for queues, _ in store.live_worker_devices(settings.lease_seconds)]
        for job, out in queued:
            out.waiting_for = waiting_for(str(job.spec.get("device", "auto")), live_queues)
    return outs


def job_out_with_waiting_for(job: JobView, store: StoreInterface, settings: Settings) -> JobOut:
    return jobs_out_with_waiting_for([job], store, settings)[0]
