"""Both study scripts as a user runs them: a report goes to a new folder under var/reports/ unless told
where (the tracked reports in examples/ stay as they are), a line of progress while they wait, and one line,
not a traceback, when the service is not there."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.examples.test_run_studies import TINY_STUDY
from tests.fixtures.service import RunningService

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCRIPTS = ["run_studies.py", "landscape_study.py"]
TINY_LANDSCAPE_STUDY: dict[str, Any] = {
    "about": {"title": "Tiny landscape check", "claim": "BN smooths."},
    "sweep": {
        "name": "tiny-landscape",
        "base": {
            **TINY_STUDY["sweep"]["base"],
            "architecture": {"kind": "mlp", "hidden": [16, 16], "activation": "relu"},
            "batch_size": 32,
            "steps": 60,
            "eval_every": 20,
            "landscape_every": 20,
            "telemetry_every": 0,
        },
        "grid": {"architecture.activation": ["relu"], "learning_rate": [0.1], "batch_norm": [False, True]},
        "seeds": [0, 1],
    },
}


def run_script(name: str, cwd: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("script", SCRIPTS)
def test_with_the_service_down_a_script_says_so_in_one_line(script: str, tmp_path: Path) -> None:
    url = closed_port_url()
    result = run_script(script, tmp_path, "--url", url)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: cannot reach the bnlab service at {url} (")
    assert line.endswith("start it with `make run`, or pass --url")
    assert not (tmp_path / "var").exists(), "nothing is written"


def tracked_reports() -> dict[str, bytes]:
    return {name: (EXAMPLES / name).read_bytes() for name in ("REPORT.md", "LANDSCAPE_REPORT.md")}


def test_run_studies_writes_a_new_folder_under_var_and_prints_progress(
    sqlite_service: RunningService, tmp_path: Path
) -> None:
    studies = tmp_path / "studies"
    studies.mkdir()
    (studies / "1-tiny.yaml").write_text(yaml.safe_dump(TINY_STUDY))
    before = tracked_reports()
    result = run_script(
        "run_studies.py", tmp_path, "--url", sqlite_service.url, "--studies-dir", str(studies)
    )
    assert result.returncode == 0, result.stderr
    [report] = list((tmp_path / "var" / "reports").glob("studies-*/REPORT.md"))
    assert "Tiny BN check" in report.read_text()
    assert (report.parent / "figures").is_dir()
    assert "1-tiny: 2/2 jobs done, 100% of the steps" in result.stderr
    assert tracked_reports() == before


def test_landscape_study_takes_an_output_dir_and_prints_progress(
    sqlite_service: RunningService, tmp_path: Path
) -> None:
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(TINY_LANDSCAPE_STUDY))
    before = tracked_reports()
    output = tmp_path / "out"
    arguments = ["--url", sqlite_service.url, "--study", str(study), "--output-dir", str(output)]
    result = run_script("landscape_study.py", tmp_path, *arguments)
    assert result.returncode == 0, result.stderr
    report = (output / "LANDSCAPE_REPORT.md").read_text()
    assert report.startswith("# Tiny landscape check")
    assert sorted(path.name for path in (output / "figures").iterdir()) == ["landscape-relu-lr0.1.png"]
    assert "4/4 jobs done, 100% of the steps" in result.stderr
    assert tracked_reports() == before
