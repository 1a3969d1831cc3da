"""How `/v1/sweeps` executes a sweep, on SQLite and PostgreSQL, without a worker: which jobs form fused
groups, which tasks reach the broker (one per group, one per job that fuses with no other), what the sweep
view says, and what the republisher publishes again for a group."""

from __future__ import annotations

from typing import Any

import sqlalchemy
from fastapi.testclient import TestClient

from api.main import create_app
from api.republisher import Republisher
from core.queue import TRAIN_GROUP_TASK, TRAIN_TASK, make_celery
from core.store import Store
from tests.api.conftest import published_tasks, settings_for
from tests.api.recorded_runs import BASE_SPEC
from tests.api.test_health import UNREACHABLE_REDIS


def submit(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/sweeps", json={"base": BASE_SPEC, **body})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_a_fused_sweep_publishes_one_task_per_group_bn_on_and_off_apart(
    client: TestClient, broker_url: str, store: Store
) -> None:
    created = submit(client, grid={"batch_norm": [True, False], "learning_rate": [0.1, 1.0]}, seeds=[0, 1])
    bn_on, bn_off = created["job_ids"][:4], created["job_ids"][4:]

    assert sorted(published_tasks(broker_url)) == sorted(
        [(TRAIN_GROUP_TASK, bn_on), (TRAIN_GROUP_TASK, bn_off)]
    )
    jobs = [store.get_job(job_id) for job_id in created["job_ids"]]
    assert all(job is not None and job.enqueued_at is not None and job.execution == "fused" for job in jobs)
    execution = client.get(f"/v1/sweeps/{created['id']}").json()["execution"]
    assert (execution["requested"], execution["used"], execution["separate_job_ids"]) == (
        "fused",
        "fused",
        [],
    )
    assert [(group["size"], group["job_ids"]) for group in execution["fused_groups"]] == [
        (4, bn_on),
        (4, bn_off),
    ]
    assert [job.fused_group for job in jobs if job] == [execution["fused_groups"][0]["id"]] * 4 + [
        execution["fused_groups"][1]["id"]
    ] * 4
    assert "8 jobs in 2 fused groups of 4, 4" in execution["note"]


def test_groups_above_the_size_limit_are_split_evenly_one_per_bn_implementation(
    migrated_database_url: str, broker_url: str
) -> None:
    app = create_app(settings_for(migrated_database_url, broker_url, max_fused_group_size=4))
    try:
        with TestClient(app) as client:
            # Five learning rates per BN implementation: one group each, of 5 → 3 + 2.
            created = submit(
                client,
                grid={"bn_implementation": ["torch", "bnlab"], "learning_rate": [0.01, 0.03, 0.1, 0.3, 1.0]},
            )
            torch_bn, paper_bn = created["job_ids"][:5], created["job_ids"][5:]
            groups = [torch_bn[:3], torch_bn[3:], paper_bn[:3], paper_bn[3:]]

            tasks = published_tasks(broker_url)
            assert sorted(tasks) == sorted((TRAIN_GROUP_TASK, group) for group in groups)
            execution = client.get(f"/v1/sweeps/{created['id']}").json()["execution"]
            assert execution["used"] == "fused"
            assert [group["job_ids"] for group in execution["fused_groups"]] == groups
            assert execution["separate_job_ids"] == []
            assert "10 jobs in 4 fused groups of 3, 2, 3, 2" in execution["note"]
            listed = client.get("/v1/sweeps").json()["items"][0]["execution"]
            assert listed == execution

            # With BN on, each implementation's one job fuses with no other; the two without BN (no BN
            # layer at all, whichever implementation) form one group.
            created = submit(
                client, grid={"batch_norm": [True, False], "bn_implementation": ["torch", "bnlab"]}
            )
            alone, fused = created["job_ids"][:2], created["job_ids"][2:]
            tasks = published_tasks(broker_url)
            assert (TRAIN_GROUP_TASK, fused) in tasks and all((TRAIN_TASK, job) in tasks for job in alone)
            execution = client.get(f"/v1/sweeps/{created['id']}").json()["execution"]
            assert execution["used"] == "mixed"
            assert [group["job_ids"] for group in execution["fused_groups"]] == [fused]
            assert execution["separate_job_ids"] == alone
            assert "2 jobs fuse with no other and run as one task each" in execution["note"]
    finally:
        app.state.store.dispose()


def test_a_cnn_sweep_fuses_apart_from_an_mlp_sweep(client: TestClient, broker_url: str) -> None:
    cnn = {**BASE_SPEC, "architecture": {"kind": "cnn", "channels": [4, 8], "activation": "relu"}}
    created = submit(client, grid={"learning_rate": [0.1, 1.0]}, seeds=[0, 1], base=cnn)
    mlp = submit(client, grid={"learning_rate": [0.1, 1.0]})

    assert sorted(published_tasks(broker_url)) == sorted(
        [(TRAIN_GROUP_TASK, created["job_ids"]), (TRAIN_GROUP_TASK, mlp["job_ids"])]
    )
    execution = client.get(f"/v1/sweeps/{created['id']}").json()["execution"]
    assert execution["used"] == "fused" and execution["separate_job_ids"] == []
    assert [group["job_ids"] for group in execution["fused_groups"]] == [created["job_ids"]]


def test_a_separate_sweep_and_a_single_fusable_job_run_one_task_per_job(
    client: TestClient, broker_url: str
) -> None:
    separate = submit(client, grid={"learning_rate": [0.1, 1.0]}, execution="separate")
    lonely = submit(client, grid={"batch_norm": [True, False]})  # each fusion group holds one job

    assert sorted(published_tasks(broker_url)) == sorted(
        (TRAIN_TASK, job_id) for job_id in separate["job_ids"] + lonely["job_ids"]
    )
    for created, requested in ((separate, "separate"), (lonely, "fused")):
        execution = client.get(f"/v1/sweeps/{created['id']}").json()["execution"]
        assert (execution["requested"], execution["used"]) == (requested, "separate")
        assert execution["fused_groups"] == [] and execution["separate_job_ids"] == created["job_ids"]


def test_the_republisher_publishes_a_group_again_as_one_group_task(
    migrated_database_url: str, broker_url: str, store: Store
) -> None:
    with TestClient(create_app(settings_for(migrated_database_url, UNREACHABLE_REDIS))) as client:
        created = submit(client, grid={"learning_rate": [0.1, 1.0]}, seeds=[0, 1])
    settings = settings_for(migrated_database_url, broker_url)
    republisher = Republisher(store, make_celery(settings), settings, unpublished_after_seconds=0)

    assert republisher.republish_once() == created["job_ids"]  # every job claimed, ...
    assert published_tasks(broker_url) == [(TRAIN_GROUP_TASK, created["job_ids"])]  # ... one task sent

    store.acquire_group_lease(created["job_ids"], "dead-worker", lease_seconds=60)
    store.finish_job(created["job_ids"][0], "dead-worker", "cancelled")
    stale = settings_for(migrated_database_url, broker_url, lease_seconds=0.0001)
    Republisher(store, make_celery(stale), stale).republish_once()
    # The running jobs' group goes out whole: the worker needs every spec to resume the group.
    assert published_tasks(broker_url) == [(TRAIN_GROUP_TASK, created["job_ids"])]


def test_each_job_says_whether_a_fused_group_trains_it_and_which(client: TestClient, store: Store) -> None:
    # BN on: each implementation's job fuses with no other and runs alone; BN off: the two form one group.
    created = submit(client, grid={"batch_norm": [True, False], "bn_implementation": ["torch", "bnlab"]})
    alone, fused = created["job_ids"][:2], created["job_ids"][2:]
    [group] = client.get(f"/v1/sweeps/{created['id']}").json()["execution"]["fused_groups"]
    assert group["job_ids"] == fused

    read = {job_id: client.get(f"/v1/jobs/{job_id}").json()["execution"] for job_id in created["job_ids"]}
    assert read == {
        **{job_id: {"mode": "fused", "group_id": group["id"], "group_size": 2} for job_id in fused},
        **{job_id: {"mode": "separate", "group_id": None, "group_size": None} for job_id in alone},
    }
    listed = client.get("/v1/jobs", params={"sweep_id": created["id"]}).json()["items"]
    assert {job["id"]: job["execution"] for job in listed} == read
    cancelled = client.post(f"/v1/jobs/{fused[0]}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["execution"] == read[fused[0]]


def test_the_sweep_counts_each_groups_jobs_and_the_separate_ones_by_status(
    client: TestClient, store: Store
) -> None:
    created = submit(client, grid={"batch_norm": [True, False], "bn_implementation": ["torch", "bnlab"]})
    alone, fused = created["job_ids"][:2], created["job_ids"][2:]
    client.post(f"/v1/jobs/{fused[0]}/cancel")
    store.acquire_lease(alone[1], "a-worker", lease_seconds=60)

    execution = client.get(f"/v1/sweeps/{created['id']}").json()["execution"]
    nothing = dict.fromkeys(["queued", "running", "succeeded", "failed", "diverged", "cancelled"], 0)
    assert [group["status_counts"] for group in execution["fused_groups"]] == [
        {**nothing, "queued": 1, "cancelled": 1}
    ]
    assert execution["separate_status_counts"] == {**nothing, "queued": 1, "running": 1}
    assert client.get("/v1/sweeps").json()["items"][0]["execution"] == execution


def test_listing_jobs_reads_their_groups_in_the_same_statements_however_many_there_are(
    client: TestClient,
) -> None:
    created = submit(client, grid={"learning_rate": [0.01, 0.1, 1.0]}, seeds=[0, 1])
    engine = client.app.state.store.engine  # type: ignore[attr-defined]
    statements: list[str] = []

    def count(*arguments: Any) -> None:
        statements.append(arguments[2])

    def statements_to_list(limit: int) -> int:
        statements.clear()
        sqlalchemy.event.listen(engine, "before_cursor_execute", count)
        try:
            page = client.get("/v1/jobs", params={"sweep_id": created["id"], "limit": limit}).json()
        finally:
            sqlalchemy.event.remove(engine, "before_cursor_execute", count)
        assert len(page["items"]) == limit and all(
            job["execution"]["mode"] == "fused" for job in page["items"]
        )
        return len(statements)

    one_job = statements_to_list(1)
    assert one_job > 0 and statements_to_list(6) == one_job
