"""`bnlab export` and `Client.export` against the running service: jobs and a whole sweep into one CSV or
Parquet file holding every point the API has, with a sweep's grid values as columns."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import bnlab
import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from client.cli import app
from tests.fixtures.service import TINY_SPEC, RunningService


def bnlab_cli(service: RunningService, *arguments: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--url", service.url, *arguments], env={"BNLAB_API_KEY": ""})
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def finished_jobs(sqlite_service: RunningService) -> list[str]:
    ids = [
        sqlite_service.submit({**TINY_SPEC, "name": "export-bn"}),
        sqlite_service.submit({**TINY_SPEC, "name": "export-plain", "batch_norm": False}),
    ]
    for job_id in ids:
        sqlite_service.wait_until_finished(job_id)
    return ids


def api_rows(service: RunningService, job_ids: list[str]) -> list[list[str]]:
    rows: list[list[str]] = []
    for job_id in job_ids:
        text = httpx.get(f"{service.url}/v1/jobs/{job_id}/metrics", params={"format": "csv"}).text
        rows.extend(list(csv.reader(text.splitlines()))[1:])
    return rows


def test_export_jobs_to_csv_and_parquet(
    sqlite_service: RunningService, finished_jobs: list[str], tmp_path: Path
) -> None:
    target = tmp_path / "points.csv"
    code, out, err = bnlab_cli(sqlite_service, "export", *finished_jobs, "-o", str(target))
    assert code == 0, err
    expected = api_rows(sqlite_service, finished_jobs)
    assert out.strip() == f"Wrote {len(expected)} points to {target}."
    written = list(csv.reader(target.read_text().splitlines()))
    assert written[0] == ["job_id", "name", "step", "value"] and written[1:] == expected

    parquet = tmp_path / "points.parquet"
    code, _, err = bnlab_cli(
        sqlite_service, "export", *finished_jobs, "--format", "parquet", "-o", str(parquet)
    )
    assert code == 0, err
    frame = pd.read_parquet(parquet)
    assert list(frame.columns) == ["job_id", "name", "step", "value"] and len(frame) == len(expected)
    from_csv = pd.read_csv(target, dtype={"job_id": str})
    pd.testing.assert_frame_equal(frame, from_csv, check_dtype=False)


def test_parquet_without_pyarrow_is_one_clear_line(
    sqlite_service: RunningService, finished_jobs: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    target = tmp_path / "points.parquet"
    code, _, err = bnlab_cli(
        sqlite_service, "export", finished_jobs[0], "--format", "parquet", "-o", str(target)
    )
    assert code == 1 and not target.exists()
    assert err.strip() == "error: Parquet export needs pyarrow: pip install pyarrow (or use --format csv)."


def test_an_unknown_job_writes_nothing(sqlite_service: RunningService, tmp_path: Path) -> None:
    target = tmp_path / "points.csv"
    code, _, err = bnlab_cli(sqlite_service, "export", "0" * 32, "-o", str(target))
    assert code == 1 and err.startswith("error: Not found (404)") and not target.exists()
    code, _, err = bnlab_cli(sqlite_service, "export", "-o", str(target))
    assert code == 1 and "Nothing to export" in err


def test_a_sweep_exports_every_job_with_its_grid_values(
    sqlite_service: RunningService, tmp_path: Path
) -> None:
    with bnlab.Client(url=sqlite_service.url) as client:
        sweep = client.submit_sweep(
            TINY_SPEC, {"learning_rate": [0.05, 0.2]}, seeds=[0, 1], name="export-sweep"
        )
        sweep.wait(timeout=120)
        job_ids = sweep.view["job_ids"]
        target = tmp_path / "sweep.csv"
        code, _, err = bnlab_cli(sqlite_service, "export", "--sweep", sweep.id, "-o", str(target))
        assert code == 0, err
        frame = pd.read_csv(target, dtype={"job_id": str})
        assert list(frame.columns) == ["job_id", "name", "step", "value", "learning_rate", "seed"]
        assert set(frame["job_id"]) == set(job_ids)
        for job_id, rows in frame.groupby("job_id"):
            spec = client.job(str(job_id)).view["spec"]
            assert set(rows["learning_rate"]) == {spec["learning_rate"]} and set(rows["seed"]) == {
                spec["seed"]
            }
        assert len(frame) == len(api_rows(sqlite_service, job_ids))

        parquet = tmp_path / "sweep.parquet"
        assert sweep.export(parquet, file_format="parquet") == len(frame)
        pd.testing.assert_frame_equal(pd.read_parquet(parquet), frame, check_dtype=False)
