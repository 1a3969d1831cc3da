"""The studies script against a real running service (SQLite + embedded broker + a worker): it submits a
study, waits for it and writes a report whose tables and figures come from the service."""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import matplotlib.image
import yaml

from tests.fixtures.service import RunningService

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "run_studies.py"
TINY_STUDY: dict[str, Any] = {
    "about": {
        "title": "Tiny BN check",
        "claim": "BN helps.",
        "heatmap": {"x": "batch_norm"},
        "compare": {"by": "batch_norm", "baseline": False, "target": 0.5, "metric": "val_accuracy"},
        "tuned": {"arm": "batch_norm", "tune": ["learning_rate"], "baseline": False},
        "arms": {"arm": "batch_norm", "by": "learning_rate", "baseline": False},
        "ics": {"by": "batch_norm"},
        "measures": {"arm": "normalization", "baseline": "none"},
        "figures": {"arm": "normalization", "curves": True, "ics": True, "gradient_ics": True},
        "reading": "Tiny runs say little.",
    },
    "sweep": {
        "name": "tiny-bn",
        "base": {
            "architecture": {"kind": "mlp", "hidden": [16], "activation": "sigmoid"},
            "batch_norm": True,
            "learning_rate": 0.1,
            "dropout": 0.0,
            "dataset": "digits",
            "optimizer": "sgd",
            "batch_size": 32,
            "steps": 40,
            "eval_every": 10,
            "target_accuracy": 0.5,
            "telemetry_every": 10,
            "device": "cpu",
        },
        "grid": {"batch_norm": [False, True], "learning_rate": [0.1]},
        "seeds": [0],
    },
}


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_studies", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_script_runs_a_study_and_writes_its_report(
    sqlite_service: RunningService, tmp_path: Path
) -> None:
    studies, output = tmp_path / "studies", tmp_path / "report"
    studies.mkdir()
    (studies / "1-tiny.yaml").write_text(yaml.safe_dump(TINY_STUDY))
    arguments = ["--url", sqlite_service.url, "--studies-dir", str(studies), "--output-dir", str(output)]
    assert load_script().main([*arguments, "--timeout", "120"]) == 0

    report = (output / "REPORT.md").read_text()
    assert "## Tiny BN check" in report and "**Claim.** BN helps." in report
    assert "| batch_norm | learning_rate | jobs | diverged |" in report
    assert "| off | 0.1 | 1 |" in report and "| on | 0.1 | 1 |" in report
    assert "| 0 | batch_norm=on |" in report  # the seed-by-seed comparison against the no-BN run
    # The arms at their tuned best, and per learning rate (one seed: no verdict).
    assert "against `batch_norm=off`" in report and "| batch_norm=on | learning_rate=0.1 (by " in report
    assert "- batch_norm=on, final accuracy: no detectable difference at n = 1." in report
    assert "At `learning_rate=0.1`, each `batch_norm` against `batch_norm=off`, seed by seed:" in report
    # The measures per arm: telemetry's drift and Santurkar's measure beside steps and accuracy (one seed: no
    # interval, no verdict).
    assert (
        "| arm | seeds | reached | steps to target | final val acc | unit median's move per probe |" in report
    )
    assert "| batch norm | 1 | " in report and "| no normalization | 1 | " in report
    assert "- batch norm vs no normalization, cos(G, G′): no detectable difference at n = 1." in report
    assert "Tiny runs say little." in report
    figures = sorted(path.name for path in (output / "figures").iterdir())
    assert figures == [
        "1-tiny-curves.png",
        "1-tiny-fig1.png",
        "1-tiny-heatmap.png",
        "1-tiny-ics-gradient.png",
        "1-tiny-ics.png",
        "1-tiny-validation.png",
    ]
    for name in figures:
        assert f"(figures/{name})" in report
        pixels = matplotlib.image.imread(io.BytesIO((output / "figures" / name).read_bytes()), format="png")
        assert pixels.ndim == 3
