"""Fused groups in the store, on both databases: the group lease (all or nothing), one heartbeat for all
jobs, cancel flags, the group checkpoint, and the sweeper's candidates.

A lease of 0 s is stale as soon as it is taken, which lets the take-over paths run without sleeping.
"""

from __future__ import annotations

from core.store import Store, SweepView
from tests.core.test_store import make_spec


def fused_sweep(store: Store, jobs: int = 3, groups: list[list[int]] | None = None) -> SweepView:
    specs = [make_spec(seed=seed) for seed in range(jobs)]
    return store.create_sweep(
        "group", make_spec(), {}, list(range(jobs)), "fused", specs, groups or [list(range(jobs))]
    )


def test_a_group_lease_takes_every_job_and_a_second_delivery_takes_none(store: Store) -> None:
    [group] = fused_sweep(store).fused_groups

    first = store.acquire_group_lease(group.job_ids, "worker-a", lease_seconds=60)
    assert not first.held_elsewhere
    assert [lease.outcome for lease in first.leases] == ["acquired"] * 3
    assert all(lease.job is not None and lease.job.fused_group == group.id for lease in first.leases)

    second = store.acquire_group_lease(group.job_ids, "worker-b", lease_seconds=60)
    assert second.held_elsewhere and second.leases == []
    jobs = [store.get_job(job_id) for job_id in group.job_ids]
    assert [(job.lease_owner, job.attempts) for job in jobs if job] == [("worker-a", 1)] * 3


def test_one_fresh_lease_elsewhere_leaves_the_whole_group_untouched(store: Store) -> None:
    [group] = fused_sweep(store).fused_groups
    store.acquire_lease(group.job_ids[1], "worker-a", lease_seconds=60)

    lease = store.acquire_group_lease(group.job_ids, "worker-b", lease_seconds=60)

    assert lease.held_elsewhere
    jobs = [store.get_job(job_id) for job_id in group.job_ids]
    assert [(job.status, job.lease_owner) for job in jobs if job] == [
        ("queued", None),
        ("running", "worker-a"),
        ("queued", None),
    ]


def test_a_stale_group_is_taken_over_whole_and_finished_jobs_are_left_alone(store: Store) -> None:
    [group] = fused_sweep(store).fused_groups
    store.acquire_group_lease(group.job_ids, "worker-a", lease_seconds=0)
    assert store.finish_job(group.job_ids[0], "worker-a", "diverged")

    taken = store.acquire_group_lease(group.job_ids, "worker-b", lease_seconds=0)

    assert [lease.outcome for lease in taken.leases] == ["finished", "taken_over", "taken_over"]
    running = [lease.job for lease in taken.leases[1:]]
    assert [(job.lease_owner, job.attempts, job.lease_losses) for job in running if job] == [
        ("worker-b", 2, 1)
    ] * 2
    assert store.heartbeat_jobs(group.job_ids[1:], "worker-a") == 0  # the old owner learns it lost them


def test_one_heartbeat_renews_every_held_job_and_counts_the_ones_still_held(store: Store) -> None:
    [group] = fused_sweep(store).fused_groups
    store.acquire_group_lease(group.job_ids, "worker-a", lease_seconds=60)
    before = [store.get_job(job_id) for job_id in group.job_ids]

    assert store.heartbeat_jobs(group.job_ids, "worker-a") == 3
    after = [store.get_job(job_id) for job_id in group.job_ids]
    assert all(
        old and new and old.heartbeat_at and new.heartbeat_at and new.heartbeat_at > old.heartbeat_at
        for old, new in zip(before, after, strict=True)
    )
    store.finish_job(group.job_ids[2], "worker-a", "cancelled")
    assert store.heartbeat_jobs(group.job_ids, "worker-a") == 2


def test_cancel_flags_of_a_group_are_read_at_once(store: Store) -> None:
    [group] = fused_sweep(store).fused_groups
    store.acquire_group_lease(group.job_ids, "worker-a", lease_seconds=60)
    assert store.cancel_requested_among(group.job_ids) == set()
    store.request_cancel(group.job_ids[1])
    assert store.cancel_requested_among(group.job_ids) == {group.job_ids[1]}


def test_a_group_keeps_its_latest_checkpoint(store: Store) -> None:
    first, second = fused_sweep(store, jobs=4, groups=[[0, 1], [2, 3]]).fused_groups
    assert store.load_group_checkpoint(first.id) is None

    store.save_group_checkpoint(first.id, 50, b"step 50")
    store.save_group_checkpoint(first.id, 100, b"step 100")

    assert store.load_group_checkpoint(first.id) == (100, b"step 100")
    assert store.load_group_checkpoint(second.id) is None


def test_a_group_lists_its_jobs_in_training_order(store: Store) -> None:
    sweep = fused_sweep(store, jobs=5, groups=[[3, 1], [0, 2, 4]])
    assert [(group.size, group.job_ids) for group in sweep.fused_groups] == [
        (2, [sweep.job_ids[1], sweep.job_ids[3]]),
        (3, [sweep.job_ids[0], sweep.job_ids[2], sweep.job_ids[4]]),
    ]
    for group in sweep.fused_groups:
        assert store.fused_group_job_ids(group.id) == group.job_ids


def test_the_sweeper_learns_which_group_a_job_to_republish_belongs_to(store: Store) -> None:
    sweep = fused_sweep(store, jobs=3, groups=[[0, 1]])
    [group] = sweep.fused_groups
    store.acquire_group_lease(group.job_ids, "worker-a", lease_seconds=0)

    stale = store.stale_running_jobs(lease_seconds=0)
    never_published = store.jobs_needing_publish(0, 3600)

    assert [(candidate.job_id, candidate.fused_group) for candidate in stale] == [
        (job_id, group.id) for job_id in group.job_ids
    ]
    assert [(candidate.job_id, candidate.fused_group) for candidate in never_published] == [
        (sweep.job_ids[2], None)
    ]
