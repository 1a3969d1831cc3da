"""Finding lost jobs and the re-publisher's conditional claims on them, on both databases.

A lease of 0 s is stale as soon as it is taken, which lets the take-over paths run without sleeping.
"""

from __future__ import annotations

from core.store import Store
from tests.core.test_store import make_spec


def test_unpublished_and_long_waiting_jobs_are_found_for_publishing(store: Store) -> None:
    unpublished = store.create_job(make_spec())
    published = store.create_job(make_spec())
    store.mark_enqueued(published.id)

    assert [c.job_id for c in store.jobs_needing_publish(3600, 3600)] == []
    assert [c.job_id for c in store.jobs_needing_publish(0, 3600)] == [unpublished.id]
    assert [c.job_id for c in store.jobs_needing_publish(0, 0)] == [unpublished.id, published.id]


def test_only_one_sweeper_claims_a_candidate(store: Store) -> None:
    job = store.create_job(make_spec(device="cpu"))
    [seen_by_replica_a] = store.jobs_needing_publish(0, 3600)
    [seen_by_replica_b] = store.jobs_needing_publish(0, 3600)
    assert (seen_by_replica_a.job_id, seen_by_replica_a.device) == (job.id, "cpu")

    assert store.claim_republish(seen_by_replica_a)
    assert not store.claim_republish(seen_by_replica_b)
    assert store.jobs_needing_publish(0, 3600) == []
    claimed = store.get_job(job.id)
    assert claimed is not None and claimed.enqueued_at is not None


def test_a_stale_running_job_is_republished_once_per_lost_lease(store: Store) -> None:
    job = store.create_job(make_spec())
    store.mark_enqueued(job.id)
    store.acquire_lease(job.id, "worker-a", lease_seconds=60)
    assert store.stale_running_jobs(lease_seconds=60) == []

    [stale] = store.stale_running_jobs(lease_seconds=0)
    assert stale.job_id == job.id and stale.status == "running"
    assert store.claim_republish(stale)
    assert store.stale_running_jobs(lease_seconds=0) == []  # already sent again

    # The republished job is taken over; when that worker dies too, the job is found again.
    assert store.acquire_lease(job.id, "worker-b", lease_seconds=0).outcome == "taken_over"
    assert [c.job_id for c in store.stale_running_jobs(lease_seconds=0)] == [job.id]


def test_a_republication_lost_long_ago_is_retried(store: Store) -> None:
    job = store.create_job(make_spec())
    store.acquire_lease(job.id, "worker-a", lease_seconds=60)
    [stale] = store.stale_running_jobs(lease_seconds=0)
    assert store.claim_republish(stale)
    assert store.stale_running_jobs(lease_seconds=0, requeue_after_seconds=3600) == []
    assert [c.job_id for c in store.stale_running_jobs(lease_seconds=0, requeue_after_seconds=0)] == [job.id]


def test_a_claim_whose_publication_failed_is_released(store: Store) -> None:
    job = store.create_job(make_spec())
    [candidate] = store.jobs_needing_publish(0, 3600)
    assert store.claim_republish(candidate)
    store.release_republish(candidate)  # the broker was down

    [again] = store.jobs_needing_publish(0, 3600)
    assert again == candidate
    assert store.get_job(job.id).enqueued_at is None  # type: ignore[union-attr]
