"""`Idempotency-Key` on `POST /v1/jobs` and `POST /v1/sweeps`, on SQLite and PostgreSQL: a retry gets the
original answer and creates nothing, another body with the key is a 422, and concurrent duplicates create
once."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi.testclient import TestClient

from core.store import Store
from tests.api.conftest import TINY_SPEC, published_tasks

SWEEP: dict[str, Any] = {
    "name": "retried",
    "base": TINY_SPEC,
    "grid": {"learning_rate": [0.1, 0.2]},
    "seeds": [0],
}


def key() -> str:
    return uuid.uuid4().hex


def test_a_retried_job_submit_gets_the_original_answer_and_creates_nothing(
    client: TestClient, broker_url: str
) -> None:
    headers = {"Idempotency-Key": key()}
    answers = [client.post("/v1/jobs", json=TINY_SPEC, headers=headers) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [201, 201, 201]
    assert answers[1].json() == answers[2].json() == answers[0].json()
    assert answers[1].headers["Idempotent-Replayed"] == "true"
    assert [job["id"] for job in client.get("/v1/jobs").json()["items"]] == [answers[0].json()["id"]]
    assert published_tasks(broker_url) == [("bnlab.train_job", answers[0].json()["id"])]

    # Key order and spelled-out defaults do not make it another body; another key is another job.
    reordered = {"device": "cpu", **{name: value for name, value in reversed(TINY_SPEC.items())}, "seed": 0}
    assert client.post("/v1/jobs", json=reordered, headers=headers).json()["id"] == answers[0].json()["id"]
    other = client.post("/v1/jobs", json=TINY_SPEC, headers={"Idempotency-Key": key()})
    assert other.status_code == 201 and other.json()["id"] != answers[0].json()["id"]


def test_the_same_key_with_another_body_is_a_422_naming_the_header(client: TestClient) -> None:
    headers = {"Idempotency-Key": key()}
    first = client.post("/v1/jobs", json=TINY_SPEC, headers=headers)
    assert first.status_code == 201
    changed = client.post("/v1/jobs", json={**TINY_SPEC, "learning_rate": 0.5}, headers=headers)
    assert changed.status_code == 422
    assert changed.json()["detail"][0]["loc"] == ["header", "idempotency-key"]
    assert len(client.get("/v1/jobs").json()["items"]) == 1


def test_a_retried_sweep_submit_gets_the_same_sweep_and_creates_no_jobs(client: TestClient) -> None:
    headers = {"Idempotency-Key": key()}
    first = client.post("/v1/sweeps", json=SWEEP, headers=headers)
    again = client.post("/v1/sweeps", json=SWEEP, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert len(client.get("/v1/sweeps").json()["items"]) == 1
    assert len(client.get("/v1/jobs").json()["items"]) == first.json()["size"] == 2
    # The key is per route: a job submit with it is its own request.
    assert client.post("/v1/jobs", json=TINY_SPEC, headers=headers).status_code == 201


def test_a_refused_request_leaves_its_key_free(client: TestClient) -> None:
    headers = {"Idempotency-Key": key()}
    too_big = client.post("/v1/sweeps", json={**SWEEP, "grid": {"seed": list(range(300))}}, headers=headers)
    assert too_big.status_code == 422
    assert client.post("/v1/sweeps", json=SWEEP, headers=headers).status_code == 201


def test_concurrent_duplicates_create_one_job(client: TestClient) -> None:
    headers = {"Idempotency-Key": key()}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: client.post("/v1/jobs", json=TINY_SPEC, headers=headers), range(8)))
    assert [answer.status_code for answer in answers] == [201] * 8
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert len(client.get("/v1/jobs").json()["items"]) == 1


def test_a_malformed_key_is_a_422(client: TestClient) -> None:
    for bad in ("", "with space", "x" * 201, "tab\there"):
        response = client.post("/v1/jobs", json=TINY_SPEC, headers={"Idempotency-Key": bad})
        assert response.status_code == 422, bad
    assert client.get("/v1/jobs").json()["items"] == []


def test_a_key_is_free_again_after_the_window_and_after_an_abandoned_claim(store: Store) -> None:
    assert store.claim_idempotency_key("jobs", "k", "a" * 64, 3600, 3600) is None
    held = store.claim_idempotency_key("jobs", "k", "a" * 64, 3600, 3600)
    assert held is not None and held.status_code is None, "the first request is still being answered"
    time.sleep(0.3)
    assert store.claim_idempotency_key("jobs", "k", "a" * 64, 3600, 0.2) is None, (
        "an abandoned claim is retaken"
    )
    store.complete_idempotency_key("jobs", "k", 201, {"id": "x"})
    answered = store.claim_idempotency_key("jobs", "k", "a" * 64, 3600, 0.2)
    assert answered is not None and (answered.status_code, answered.response) == (201, {"id": "x"})
    time.sleep(0.3)
    assert store.claim_idempotency_key("jobs", "k", "b" * 64, 0.2, 0.2) is None, "past the window it is free"
