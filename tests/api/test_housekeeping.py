"""Housekeeping through the API: tags, notes and archiving with `PATCH`, the `?tag=` and `?archived=`
filters, deleting queued jobs and sweeps, and the answers to bad requests."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.api.conftest import TINY_SPEC, submit


def _ids(client: TestClient, path: str, **params: Any) -> list[str]:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def _sweep(client: TestClient) -> dict[str, Any]:
    response = client.post(
        "/v1/sweeps",
        json={"name": "lr", "base": TINY_SPEC, "grid": {"learning_rate": [0.1, 0.2]}, "seeds": [0]},
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_tags_note_and_archive_show_on_the_job_and_filter_the_list(client: TestClient) -> None:
    first, second = submit(client), submit(client)
    assert (first["tags"], first["note"], first["archived"]) == ([], "", False)

    patched = client.patch(f"/v1/jobs/{first['id']}", json={"tags": ["paper", "bn:on"], "note": "baseline"})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["tags"], patched.json()["note"]) == (["paper", "bn:on"], "baseline")
    assert client.get(f"/v1/jobs/{first['id']}").json()["tags"] == ["paper", "bn:on"]

    assert _ids(client, "/v1/jobs", tag="paper") == [first["id"]]
    assert client.patch(f"/v1/jobs/{second['id']}", json={"archived": True}).json()["archived"] is True
    assert _ids(client, "/v1/jobs") == [first["id"]]
    assert _ids(client, "/v1/jobs", archived="true") == [second["id"]]
    assert _ids(client, "/v1/jobs", archived="all") == [second["id"], first["id"]]
    # A field left out is kept.
    assert client.patch(f"/v1/jobs/{first['id']}", json={"archived": False}).json()["note"] == "baseline"


def test_an_archived_sweep_hides_its_jobs_and_is_listed_when_asked(client: TestClient) -> None:
    sweep = _sweep(client)
    alone = submit(client)
    patched = client.patch(f"/v1/sweeps/{sweep['id']}", json={"tags": ["grid"], "archived": True})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["tags"], patched.json()["archived"]) == (["grid"], True)

    assert _ids(client, "/v1/sweeps") == []
    assert _ids(client, "/v1/sweeps", archived="true", tag="grid") == [sweep["id"]]
    assert _ids(client, "/v1/jobs") == [alone["id"]]
    assert sorted(_ids(client, "/v1/jobs", sweep_id=sweep["id"])) == sorted(sweep["job_ids"])


def test_deleting_a_queued_job_cancels_it_and_removes_it(client: TestClient) -> None:
    job = submit(client)
    kept = submit(client)

    response = client.delete(f"/v1/jobs/{job['id']}")

    assert response.status_code == 204 and response.content == b""
    assert client.get(f"/v1/jobs/{job['id']}").status_code == 404
    assert client.get(f"/v1/jobs/{job['id']}/metrics").status_code == 404
    assert _ids(client, "/v1/jobs", archived="all") == [kept["id"]]
    assert client.delete(f"/v1/jobs/{job['id']}").status_code == 404


def test_a_sweep_is_deleted_whole_never_job_by_job(client: TestClient) -> None:
    sweep = _sweep(client)

    refused = client.delete(f"/v1/jobs/{sweep['job_ids'][0]}")
    assert refused.status_code == 409 and sweep["id"] in refused.json()["detail"]

    assert client.delete(f"/v1/sweeps/{sweep['id']}").status_code == 204
    assert client.get(f"/v1/sweeps/{sweep['id']}").status_code == 404
    assert all(client.get(f"/v1/jobs/{job_id}").status_code == 404 for job_id in sweep["job_ids"])
    assert client.delete(f"/v1/sweeps/{sweep['id']}").status_code == 404


def test_bad_labels_and_filters_are_a_422_naming_the_field(client: TestClient) -> None:
    job = submit(client)
    cases: list[tuple[dict[str, Any], tuple[Any, ...]]] = [
        ({"tags": ["has space"]}, ("body", "tags", 0)),
        ({"tags": ["x" * 33]}, ("body", "tags", 0)),
        ({"tags": [f"t{index}" for index in range(17)]}, ("body", "tags")),
        ({"note": "n" * 4001}, ("body", "note")),
        ({"archived": "maybe"}, ("body", "archived")),
        ({"colour": "red"}, ("body", "colour")),
    ]
    for body, location in cases:
        response = client.patch(f"/v1/jobs/{job['id']}", json=body)
        assert response.status_code == 422, body
        assert tuple(response.json()["detail"][0]["loc"]) == location, response.json()
    for path in ("/v1/jobs", "/v1/sweeps"):
        assert client.get(path, params={"tag": "a,b"}).json()["detail"][0]["loc"] == ["query", "tag"]
        assert client.get(path, params={"archived": "yes"}).json()["detail"][0]["loc"] == [
            "query",
            "archived",
        ]
    assert client.patch(f"/v1/jobs/{'0' * 32}", json={"note": "x"}).status_code == 404
    assert client.patch(f"/v1/sweeps/{'0' * 32}", json={"note": "x"}).status_code == 404


def test_a_note_the_database_cannot_keep_is_a_422(client: TestClient) -> None:
    job = submit(client)
    raw = b'{"note": "a\\u0000b"}'  # JSON for a NUL character, which PostgreSQL's text refuses
    headers = {"Content-Type": "application/json"}
    response = client.patch(f"/v1/jobs/{job['id']}", content=raw, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "note"]
    assert client.get(f"/v1/jobs/{job['id']}").json()["note"] == ""
