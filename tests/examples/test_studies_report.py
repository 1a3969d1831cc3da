"""The studies report's own arithmetic and Markdown, from given figures (no service): a job's covariate-shift
measures from its telemetry, arms with intervals, paired differences and the verdicts the statistics rule
allows, and a report that keeps the sections of studies not run again."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example_module(name: str) -> ModuleType:
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    return importlib.import_module(name)


measures = example_module("studies_measures")
report = example_module("studies_report")
model = example_module("studies_model")
MEASURE = {measure.key: measure for measure in measures.MEASURES}

NONE = {"normalization": "none", "batch_norm": False, "bn_noise": None}
BATCH = {"normalization": "batch", "batch_norm": True, "bn_noise": None}
NOISY = {"normalization": "batch", "batch_norm": True, "bn_noise": {"mean_std": 0.5, "scale_std": 1.0}}
LAYER = {"normalization": "layer", "batch_norm": False, "bn_noise": None}


def layer(index: int, p50: list[float | None], spread: list[float], change: list[float | None]) -> dict:
    return {
        "layer": index,
        "unit_p15": [middle - width / 2 for middle, width in zip(p50, spread, strict=True)],
        "unit_p50": p50,
        "unit_p85": [middle + width / 2 for middle, width in zip(p50, spread, strict=True)],
        "ics_gradient_change": change,
        "ics_gradient_cosine": [None if value is None else 1 - value for value in change],
    }


def test_telemetry_measures_read_the_last_layers_unit_and_the_deeper_layers_gradients() -> None:
    layers = [
        layer(0, [9.0, 0.0, 9.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]),  # nothing precedes it: left out
        layer(1, [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.2, 0.4, None]),
        layer(2, [0.0, 1.0, -1.0], [1.0, 2.0, 4.0], [0.6, 0.8, 0.0]),
    ]
    found = measures.telemetry_measures(layers)
    assert found["median_range"] == pytest.approx(2.0)  # from −1 to 1: layer 2, the last
    assert found["median_move"] == pytest.approx((1.0 + 2.0) / 2)  # |0→1| and |1→−1|
    assert found["spread_change"] == pytest.approx(0.6931471805599453)  # log 2 at both probes
    assert found["gradient_change"] == pytest.approx((0.2 + 0.4 + 0.6 + 0.8 + 0.0) / 5)  # None left out
    assert found["gradient_cosine"] == pytest.approx(1 - 0.4)
    assert measures.telemetry_measures([]) == dict.fromkeys(measures.TELEMETRY_MEASURES)


def test_a_run_stopped_at_its_target_has_no_final_accuracy_to_compare() -> None:
    job = {
        "spec": {**BATCH, "stop_at_target": True},
        "summary": {"steps_to_target": 60, "final_val_accuracy": 0.91},
    }
    assert measures.job_measures(job, [])["final_accuracy"] is None
    job["spec"]["stop_at_target"] = False
    assert measures.job_measures(job, [])["final_accuracy"] == 0.91


def test_arms_are_named_by_normalization_and_ordered_none_batch_noisy_layer() -> None:
    rows = [
        ({**spec, "seed": seed}, {"steps_to_target": 1.0})
        for spec in (LAYER, NOISY, BATCH, NONE)
        for seed in (0, 1)
    ]
    arms = measures.group_arms(rows)
    assert [arm.label for arm in arms] == [
        "no normalization",
        "batch norm",
        "noisy BN (m 0.5, s 1)",
        "layer norm",
    ]
    assert [sorted(arm.by_seed) for arm in arms] == [[0, 1]] * 4


def arm(label: str, kind: str, steps: list[float | None], drift: list[float]) -> Any:
    return measures.Arm(
        label,
        kind,
        {
            seed: {"steps_to_target": step, "median_move": move}
            for seed, (step, move) in enumerate(zip(steps, drift, strict=True))
        },
    )


def test_the_tables_give_intervals_and_verdicts_only_where_the_interval_excludes_zero() -> None:
    none = arm("no normalization", "none", [5000, 5200, 5100, 4900, 5300], [0.08, 0.07, 0.09, 0.08, 0.07])
    batch = arm("batch norm", "batch", [60, 70, 50, 80, 65], [0.05, 0.04, 0.05, 0.06, 0.05])
    noisy = arm("noisy BN (m 0.5, s 0.5)", "noisy", [70, 60, 80, 55, 75], [0.6, 0.5, 0.7, 0.6, 0.55])
    table = "\n".join(measures.arms_table([none, batch, noisy]))
    assert "| no normalization | 5 | 5/5 | 5100 [4904, 5296] | 0.078 [0.068, 0.088] |" in table
    assert "final val acc" not in table  # no arm has the figure: no column
    text = "\n".join(measures.differences_table([none, batch, noisy], ["none", "batch"]))
    assert "- batch norm vs no normalization, steps to target: faster to the target with batch norm" in text
    assert (
        "- noisy BN (m 0.5, s 0.5) vs no normalization, unit median's move per probe: more movement" in text
    )
    # Noisy BN against BN: steps overlap (no verdict), drift does not.
    assert (
        "- noisy BN (m 0.5, s 0.5) vs batch norm, steps to target: no detectable difference at n = 5." in text
    )
    assert "- noisy BN (m 0.5, s 0.5) vs batch norm, unit median's move per probe: more movement with" in text
    assert "- batch norm vs no normalization, speedup: fewer steps to the target with batch norm (78." in text
    assert "Each arm minus **batch norm**" in text
    assert "| no normalization | " not in text.split("Each arm minus **batch norm**")[1]  # in the first table


def test_differences_are_over_the_seeds_both_arms_have() -> None:
    none = arm("no normalization", "none", [None, None, 5000, 5100, 4900], [0.1] * 5)
    batch = arm("batch norm", "batch", [60, 70, 50, 80, 65], [0.1] * 5)
    cell, words = measures.difference_text(MEASURE["steps_to_target"], batch, none)
    assert words.endswith("n = 3)") and cell.startswith("-4935 ")  # (50 − 5000 + 80 − 5100 + 65 − 4900) / 3
    cell, words = measures.difference_text(MEASURE["median_move"], batch, none)
    assert words == "unit median's move per probe: no detectable difference at n = 5"
    lonely = arm("no normalization", "none", [None] * 5, [0.1] * 5)
    assert measures.difference_text(MEASURE["steps_to_target"], batch, lonely) == (
        "—",
        "steps to target: no seed has it in both arms",
    )
    assert measures.speedup_text(batch, lonely) == ("—", None)


def test_grid_values_read_as_table_cells() -> None:
    assert model.value_text(None) == "null"
    assert model.value_text({"mean_std": 0.5, "scale_std": 1.0}) == "mean_std=0.5, scale_std=1"
    assert model.value_text([100, 100, 100]) == "3 × 100" and model.value_text(False) == "off"


OLD_REPORT = """# What bnlab shows about batch normalization

Generated by `python examples/run_studies.py` against a bnlab service; every figure below was measured by \
that run (170 jobs in 140 s). Regenerate …

## Batch norm vs none

Old table one.

## Dropout study

Old table three.
"""


def test_a_report_keeps_the_sections_of_studies_not_run_again(tmp_path: Path) -> None:
    path = tmp_path / "REPORT.md"
    path.write_text(OLD_REPORT)
    studies = [
        model.Study("1-bn", {"title": "Batch norm vs none"}, [{}]),
        model.Study("3-dropout", {"title": "Dropout study"}, [{}]),
        model.Study("6-new", {"title": "New study"}, [{}]),
    ]
    kept = report.kept_sections(path, studies)
    assert kept["1-bn"] == ["<!-- study: 1-bn -->", "## Batch norm vs none", "", "Old table one.", ""]
    new = {"6-new": ["<!-- study: 6-new -->", "## New study", "", "New table.", ""]}
    text = report.report_text(new, kept, ["1-bn", "3-dropout", "6-new"], report.earlier_run_note(path))
    assert text.index("Old table one.") < text.index("Old table three.") < text.index("New table.")
    assert "an earlier run of 170 jobs in 140 s" in text
    # Written again: found by the markers now, and a study run again replaces its own section only.
    path.write_text(text)
    again = report.kept_sections(path, studies)
    assert again == {**kept, **new}
    rerun = {"1-bn": ["<!-- study: 1-bn -->", "## Batch norm vs none", "", "New table one.", ""]}
    text = report.report_text(rerun, again, ["1-bn", "3-dropout", "6-new"])
    assert "Old table one." not in text and "New table one." in text and "New table." in text
