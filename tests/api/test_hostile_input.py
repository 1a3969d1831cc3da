"""Input no valid request holds is a 422 naming the field, the same on SQLite and PostgreSQL, never a 500:
non-finite numbers, forged cursors, NUL and lone surrogates in any string, patterns with a trailing newline.
The 422 itself must always be valid JSON, whatever the input it echoes."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.main import create_app
from core.db.migrate import upgrade_database
from tests.api.conftest import TINY_SPEC, published_tasks, settings_for, submit

NUMBER_FIELDS = ["learning_rate", "dropout", "init_std", "target_accuracy"]
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e999"]
UNSTORABLE_TEXT = ["a\u0000b", "\udc00", "bn\ud800"]


def raw_json(value: Any, **replacements: str) -> str:
    """JSON text of `value` with each placeholder string replaced by raw JSON text (NaN, 1e999, ...)."""
    text = json.dumps(value)
    for placeholder, raw in replacements.items():
        text = text.replace(json.dumps(placeholder), raw)
    return text


def post_raw(client: TestClient, path: str, text: str) -> Any:
    return client.post(
        path, content=text.encode("utf-8", "surrogatepass"), headers={"content-type": "application/json"}
    )


def assert_422_naming(response: Any, loc: list[Any]) -> None:
    assert response.status_code == 422, response.text
    body = json.loads(response.content)  # strictly valid JSON: the answer must encode whatever came in
    assert loc in [error["loc"] for error in body["detail"]], body


@pytest.mark.parametrize("field", NUMBER_FIELDS)
@pytest.mark.parametrize("number", NON_FINITE)
def test_a_non_finite_number_in_a_job_spec_is_a_422_naming_it(
    client: TestClient, field: str, number: str
) -> None:
    response = post_raw(
        client, "/v1/jobs", raw_json({**TINY_SPEC, field: "<number>"}, **{"<number>": number})
    )
    assert_422_naming(response, ["body", field])


@pytest.mark.parametrize("field", NUMBER_FIELDS)
def test_a_non_finite_number_in_a_sweeps_base_is_a_422_naming_it(client: TestClient, field: str) -> None:
    body = {"name": "s", "base": {**TINY_SPEC, field: "<number>"}, "grid": {"batch_norm": [True, False]}}
    response = post_raw(client, "/v1/sweeps", raw_json(body, **{"<number>": "NaN"}))
    assert_422_naming(response, ["body", "base", field])
    response = post_raw(client, "/v1/sweeps", raw_json(body, **{"<number>": "1e999"}))
    assert_422_naming(response, ["body", "base", field])


def forged(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/sweeps"])
@pytest.mark.parametrize(
    "cursor",
    [
        "cjE6wrI",  # "r1:²": a digit to str.isdigit, not to int()
        forged("r1:" + "9" * 27),  # beyond a bigint
        forged("r1:" + str(2**63)),  # one past the largest bigint
        forged("r1:٣"),  # an Arabic-Indic digit
        "\u0000",
    ],
)
def test_a_forged_cursor_is_a_422_naming_it(client: TestClient, path: str, cursor: str) -> None:
    submit(client)
    assert_422_naming(client.get(path, params={"cursor": cursor}), ["query", "cursor"])


def test_the_largest_cursor_a_page_could_hand_out_is_read(client: TestClient) -> None:
    response = client.get("/v1/jobs", params={"cursor": forged("r1:" + str(2**63 - 1))})
    assert response.status_code == 200
    assert [job["id"] for job in response.json()["items"]] == []


@pytest.mark.parametrize("text", UNSTORABLE_TEXT)
def test_nul_and_lone_surrogates_in_a_job_name_are_a_422(client: TestClient, text: str) -> None:
    response = post_raw(
        client, "/v1/jobs", raw_json({**TINY_SPEC, "name": "<name>"}, **{"<name>": json.dumps(text)})
    )
    assert_422_naming(response, ["body", "name"])
    assert client.get("/v1/jobs").json()["items"] == [], "nothing was stored"


@pytest.mark.parametrize("text", UNSTORABLE_TEXT)
def test_nul_and_lone_surrogates_anywhere_in_a_sweep_are_a_422(client: TestClient, text: str) -> None:
    encoded = json.dumps(text)
    base = {**TINY_SPEC, "name": "ok"}
    for body, loc in (
        ({"name": "<t>", "base": base}, ["body", "name"]),
        ({"name": "s", "base": {**base, "name": "<t>"}}, ["body", "base", "name"]),
        ({"name": "s", "base": base, "grid": {"name": ["a", "<t>"]}}, ["body", "grid"]),
    ):
        assert_422_naming(post_raw(client, "/v1/sweeps", raw_json(body, **{"<t>": encoded})), loc)
    assert client.get("/v1/sweeps").json()["items"] == [], "nothing was stored"


def test_an_unknown_field_whose_name_holds_a_lone_surrogate_is_a_422_that_encodes(client: TestClient) -> None:
    response = post_raw(client, "/v1/jobs", json.dumps(TINY_SPEC)[:-1] + ', "x\\udc00": 1}')
    assert response.status_code == 422
    json.loads(response.content)


@pytest.mark.parametrize("sweep_id", ["\u0000", "abc\u0000", "not-a-sweep-id"])
def test_a_sweep_id_filter_that_is_no_id_is_a_422(client: TestClient, sweep_id: str) -> None:
    assert_422_naming(client.get("/v1/jobs", params={"sweep_id": sweep_id}), ["query", "sweep_id"])


@pytest.mark.parametrize(
    "device", ["cpu\n", "auto\n", "cuda:1\n", "cuda:07", "cuda:100", "cuda:", "cuda:-1", " cpu"]
)
def test_a_device_is_matched_whole(client: TestClient, device: str) -> None:
    assert_422_naming(client.post("/v1/jobs", json={**TINY_SPEC, "device": device}), ["body", "device"])


def test_a_gpu_index_no_worker_has_is_accepted_and_queued_for_the_gpus(
    client: TestClient, broker_url: str
) -> None:
    """Whether some worker has that GPU is known only to the workers: the job waits on the gpu queue."""
    job = submit(client, device="cuda:99")
    assert job["status"] == "queued"
    assert published_tasks(broker_url, queue="gpu") == [("bnlab.train_job", job["id"])]


def test_a_name_with_nul_stored_before_it_was_refused_reads_back_replaced(
    sqlite_url: str, broker_url: str
) -> None:
    """SQLite kept NUL before it was refused: such a job and sweep still list and read (U+FFFD in its
    place) instead of failing the answer's validation."""
    upgrade_database(sqlite_url)
    app = create_app(settings_for(sqlite_url, broker_url))
    with TestClient(app) as client:
        job = submit(client)
        sweep = client.post("/v1/sweeps", json={"name": "s", "base": TINY_SPEC}).json()
        with app.state.store.engine.begin() as connection:
            connection.execute(
                sa.text("UPDATE job SET name = :name, spec = json_set(spec, '$.name', :name)"),
                {"name": "a\x00b"},
            )
            connection.execute(
                sa.text("UPDATE sweep SET base = json_set(base, '$.name', :name)"), {"name": "a\x00b"}
            )
        listed = client.get("/v1/jobs")
        read = client.get(f"/v1/jobs/{job['id']}")
        sweep_read = client.get(f"/v1/sweeps/{sweep['id']}")
    app.state.store.dispose()
    assert listed.status_code == read.status_code == sweep_read.status_code == 200
    assert read.json()["spec"]["name"] == "a\ufffdb"
    assert sweep_read.json()["base"]["name"] == "a\ufffdb"
