"""The dashboard's files as the API serves them: content types, no auth, nothing outside static/, nothing
fetched from elsewhere (the page works offline), and no trace in the API's OpenAPI schema."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.dashboard.router import STATIC_DIR
from api.main import create_app
from core.db.migrate import upgrade_database
from tests.api.conftest import settings_for

API_KEY = "dashboard-key"
EXPECTED_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# The only absolute URLs allowed in the page's files: XML namespaces, which name and never fetch.
NAMESPACE_URL = re.compile(r"http://www\.w3\.org/2000/svg")
STATIC_FILES = sorted(path for path in STATIC_DIR.iterdir() if path.is_file())


@pytest.fixture
def keyed_client(sqlite_url: str, tmp_path: Path) -> Iterator[TestClient]:
    """An app with an API key configured, on a migrated SQLite database of its own."""
    upgrade_database(sqlite_url)
    app = create_app(settings_for(sqlite_url, f"sqla+sqlite:///{tmp_path / 'broker.db'}", api_keys=API_KEY))
    with TestClient(app) as client:
        yield client
    app.state.store.dispose()


def test_the_page_is_served_at_the_root_without_a_key(keyed_client: TestClient) -> None:
    response = keyed_client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="/dashboard/app.js">' in response.text
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy  # scripts, styles and connections from this origin only


@pytest.mark.parametrize("path", STATIC_FILES, ids=lambda path: path.name)
def test_every_file_is_served_with_its_content_type(keyed_client: TestClient, path: Path) -> None:
    response = keyed_client.get(f"/dashboard/{path.name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == EXPECTED_TYPES[path.suffix]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.content == path.read_bytes()


def test_every_module_the_page_imports_is_served(keyed_client: TestClient) -> None:
    imported = {
        name
        for path in STATIC_DIR.glob("*.js")
        for name in re.findall(r'from "\./([a-z_-]+\.js)"', path.read_text(encoding="utf-8"))
    }
    assert "api.js" in imported
    for name in imported:
        assert keyed_client.get(f"/dashboard/{name}").status_code == 200, name


@pytest.mark.parametrize(
    "name",
    [
        "nothing.js",
        "..%2Frouter.py",
        "%2E%2E%2F__init__.py",
        ".hidden.js",
        "router.py",
        "__init__.py",
        "index.htm",
        "a" * 65,
    ],
)
def test_anything_else_is_not_found(keyed_client: TestClient, name: str) -> None:
    response = keyed_client.get(f"/dashboard/{name}")
    assert response.status_code in (404, 422)
    assert "detail" in response.json()


def test_the_dashboard_fetches_nothing_from_elsewhere() -> None:
    for path in STATIC_FILES:
        text = NAMESPACE_URL.sub("", path.read_text(encoding="utf-8"))
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.IGNORECASE), path.name


def test_the_dashboard_is_not_part_of_the_api_schema(keyed_client: TestClient) -> None:
    # The schema itself may need the key, depending on how auth is set up; read it from the app.
    schema_paths = keyed_client.app.openapi()["paths"]  # type: ignore[attr-defined]
    assert "/" not in schema_paths
    assert not any(path.startswith("/dashboard") for path in schema_paths)
