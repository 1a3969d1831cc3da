"""examples/notebook.ipynb runs top to bottom in a fresh Jupyter kernel against the running service: BN
reaches 90% within its 200 steps and the job without BN does not, and the curves are drawn."""

from __future__ import annotations

import math
from pathlib import Path

import bnlab
import nbformat
import pytest
from nbclient import NotebookClient

from tests.fixtures.service import RunningService

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "notebook.ipynb"


@pytest.mark.timeout(240)
def test_the_notebook_shows_the_papers_comparison(
    sqlite_service: RunningService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BNLAB_URL", sqlite_service.url)  # the kernel inherits the environment
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=180, kernel_name="python3").execute()

    compare_cell, plot_cell = (cell for cell in notebook.cells if cell.cell_type == "code")
    progress = "".join(output.get("text", "") for output in compare_cell.outputs)
    assert progress.count("succeeded step 200/200") == 2
    table = next(output for output in compare_cell.outputs if output.output_type == "execute_result")
    assert "batch_norm=True" in table["data"]["text/plain"] and "<table" in table["data"]["text/html"]
    assert any(
        output.output_type == "display_data" and "image/png" in output.data for output in plot_cell.outputs
    )

    with bnlab.Client(url=sqlite_service.url) as client:
        newest = {job.view["spec"]["name"]: job.id for job in reversed(client.jobs(limit=200))}
        comparison = client.compare([newest["batch_norm=True"], newest["batch_norm=False"]], target=0.9)
    with_bn, without_bn = comparison.set_index("name")["steps_to_target"][
        ["batch_norm=True", "batch_norm=False"]
    ]
    assert with_bn <= 200 and math.isnan(without_bn)
