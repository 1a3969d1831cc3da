"""Only requests whose Host names the API are answered (DNS rebinding: a web page must not reach the open
embedded API on 127.0.0.1 through a name of its own). The default trusts localhost, 127.0.0.1 and [::1];
`make run` adds its bind address; the probes answer any host."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.embedded import trusted_hosts_with
from api.main import create_app
from core.settings import Settings
from tests.api.conftest import settings_for


@pytest.fixture
def default_settings(
    migrated_database_url: str, broker_url: str, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    monkeypatch.delenv("BNLAB_TRUSTED_HOSTS", raising=False)
    return settings_for(migrated_database_url, broker_url)


@pytest.fixture
def app_client(default_settings: Settings) -> Iterator[TestClient]:
    app = create_app(default_settings)
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        yield client
    app.state.store.dispose()


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost:8000", "LOCALHOST", "[::1]:8000", "127.0.0.1"])
def test_the_default_answers_localhost_by_any_of_its_names(app_client: TestClient, host: str) -> None:
    assert app_client.get("/v1/jobs", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize(
    "host", ["rebind.attacker.example", "rebind.attacker.example:8000", "127.0.0.1.nip.io", ""]
)
def test_another_host_is_a_400_with_a_detail_and_nothing_runs(app_client: TestClient, host: str) -> None:
    for method, path in (("GET", "/v1/jobs"), ("POST", "/v1/jobs"), ("GET", "/"), ("GET", "/docs")):
        response = app_client.request(method, path, headers={"Host": host}, json={})
        assert response.status_code == 400, (method, path)
        assert "BNLAB_TRUSTED_HOSTS" in response.json()["detail"]
    assert app_client.get("/v1/jobs").json()["items"] == []


def test_the_probes_answer_any_host(app_client: TestClient) -> None:
    assert app_client.get("/healthz", headers={"Host": "10.1.2.3:8000"}).status_code == 200
    assert app_client.get("/readyz", headers={"Host": "10.1.2.3:8000"}).status_code == 200


def test_listed_names_and_subdomain_patterns_are_trusted(migrated_database_url: str, broker_url: str) -> None:
    settings = settings_for(
        migrated_database_url, broker_url, trusted_hosts="bnlab.example.org,*.lab.example"
    )
    app = create_app(settings)
    with TestClient(app) as client:
        for host, expected in (
            ("bnlab.example.org", 200),
            ("gpu1.lab.example:8000", 200),
            ("lab.example.evil", 400),
            ("localhost", 400),
        ):
            assert client.get("/v1/jobs", headers={"Host": host}).status_code == expected, host
    app.state.store.dispose()


def test_the_embedded_launcher_trusts_the_address_it_binds() -> None:
    default = Settings(_env_file=None, trusted_hosts="localhost,127.0.0.1,[::1]").trusted_hosts  # type: ignore[call-arg]
    assert trusted_hosts_with(default, "127.0.0.1") == "localhost,127.0.0.1,[::1]"
    assert trusted_hosts_with(default, "192.168.1.20") == "localhost,127.0.0.1,[::1],192.168.1.20"
    assert trusted_hosts_with(default, "fe80::1") == "localhost,127.0.0.1,[::1],[fe80::1]"
