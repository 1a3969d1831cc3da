"""/docs (Swagger UI) and /redoc (ReDoc) work offline: each page refers only to this service's own URLs,
each of those answers, and the pages forbid loading anything from another origin."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from tests.api.conftest import settings_for

# Where the two pages name what they load: attributes, and the spec URL in Swagger UI's start-up script.
REFERENCE = re.compile(r"""(?:src|href|spec-url)="([^"]*)"|url: '([^']*)'""")
EXPECTED_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
    ".json": "application/json",
}


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    return TestClient(
        create_app(settings_for(f"sqlite:///{tmp_path / 'bnlab.db'}", f"sqla+sqlite:///{tmp_path / 'b.db'}"))
    )


@pytest.mark.parametrize(
    ("page", "script"), [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")]
)
def test_a_docs_page_loads_only_local_files_and_each_answers(
    client: TestClient, page: str, script: str
) -> None:
    response = client.get(page)
    assert response.status_code == 200
    assert "http" not in response.text  # no absolute URL: nothing from a CDN or font service
    assert "default-src 'self'" in response.headers["content-security-policy"]

    references = [attribute or script_url for attribute, script_url in REFERENCE.findall(response.text)]
    assert any(reference.endswith(script) for reference in references), references
    assert "/openapi.json" in references
    for reference in references:
        assert reference.startswith("/") and not reference.startswith("//"), reference
        asset = client.get(reference)
        assert asset.status_code == 200, reference
        assert asset.headers["content-type"].startswith(EXPECTED_TYPES[Path(reference).suffix]), reference
        assert len(asset.content) > 0


def test_the_docs_pages_are_not_operations_of_the_api(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith(("/docs", "/redoc"))]
