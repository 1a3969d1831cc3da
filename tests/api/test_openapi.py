"""The OpenAPI document a user reads at /docs: examples, documented 4xx answers; and no torch in the API."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from api.main import create_app
from tests.api.conftest import settings_for

REPOSITORY = Path(__file__).resolve().parents[2]


def openapi(tmp_path: Path) -> dict[str, Any]:
    app = create_app(
        settings_for(f"sqlite:///{tmp_path / 'bnlab.db'}", f"sqla+sqlite:///{tmp_path / 'b.db'}")
    )
    document: dict[str, Any] = TestClient(app).get("/openapi.json").json()
    return document


def test_every_job_route_documents_its_4xx_answers(tmp_path: Path) -> None:
    paths = openapi(tmp_path)["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            if "{job_id}" in path:
                assert "404" in codes, f"{method} {path}"
            if path.startswith("/v1"):
                assert "503" in codes, f"{method} {path}"
    assert {"413", "422"} <= set(paths["/v1/jobs"]["post"]["responses"])
    assert "409" in paths["/v1/jobs/{job_id}/cancel"]["post"]["responses"]
    assert "503" in paths["/readyz"]["get"]["responses"]


def test_the_paper_digits_job_is_the_submit_example(tmp_path: Path) -> None:
    examples = openapi(tmp_path)["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"][
        "examples"
    ]
    paper = examples["paper_digits_bn"]["value"]
    assert paper["architecture"] == {"kind": "mlp", "hidden": [100, 100, 100], "activation": "sigmoid"}
    assert paper["batch_norm"] is True and examples["paper_digits_no_bn"]["value"]["batch_norm"] is False


def test_the_api_process_never_imports_torch(tmp_path: Path) -> None:
    probe = (
        "import sys\n"
        "import api.main, api.embedded\n"
        "api.main.create_app()\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('torch-free')\n"
    )
    environment = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'bnlab.db'}",
        "BROKER_URL": f"sqla+sqlite:///{tmp_path / 'broker.db'}",
        "PYTHONPATH": str(REPOSITORY),
    }
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "torch-free"
