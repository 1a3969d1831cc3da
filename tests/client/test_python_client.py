"""`import bnlab` against the real running service (API + worker, embedded mode): every call of the
client, its DataFrames equal to the service's JSON, and each failure as its typed exception."""

from __future__ import annotations

import io
import math
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

import bnlab
import httpx
import numpy as np
import pytest

from tests.fixtures.service import NEVER_STARTS_SPEC, TINY_SPEC, RunningService
from tests.fixtures.worker import PROJECT_ROOT, free_port

CLIENT_DISTRIBUTION = PROJECT_ROOT / "clients" / "python"


@pytest.fixture
def client(sqlite_service: RunningService) -> bnlab.Client:
    with bnlab.Client(url=sqlite_service.url) as client:
        yield client


def same(left: float | None, right: float | None) -> bool:
    if left is None or right is None or (isinstance(left, float) and math.isnan(left)):
        return (left is None or math.isnan(left)) and (right is None or math.isnan(right))
    return left == right


def test_submit_wait_and_metrics_equal_the_json(client: bnlab.Client, sqlite_service: RunningService) -> None:
    job = client.submit({**TINY_SPEC, "name": "client-metrics"})
    assert job.status == "queued"
    progress = io.StringIO()
    assert job.wait(progress=True, timeout=60, out=progress) is job
    assert job.status == "succeeded"
    assert f"job {job.id[:8]} succeeded step 40/40" in progress.getvalue()

    frame = job.metrics()
    assert list(frame.columns) == ["job", "name", "step", "value"]
    answer = httpx.get(f"{sqlite_service.url}/v1/jobs/{job.id}/metrics", params={"max_points": 10_000}).json()
    expected = {
        (job.id, name, step): value
        for name, series in answer["series"].items()
        for step, value in zip(series["steps"], series["values"], strict=True)
    }
    assert len(frame) == len(expected) > 0
    for row in frame.itertuples(index=False):
        assert same(row.value, expected[row.job, row.name, row.step])
    assert list(frame["step"]) == sorted(frame["step"])  # in step order, as the service stores them

    with_spec = job.metrics(names=["val_accuracy"], spec=["batch_norm", "architecture.activation"])
    assert set(with_spec["name"]) == {"val_accuracy"}
    assert set(with_spec["batch_norm"]) == {True} and set(with_spec["architecture.activation"]) == {"sigmoid"}
    everything = job.metrics(spec=True)
    assert {"learning_rate", "architecture.hidden", "seed"} <= set(everything.columns)
    assert set(everything["architecture.hidden"]) == {(16,)}


def test_metrics_of_several_jobs_compare_and_telemetry(
    client: bnlab.Client, sqlite_service: RunningService
) -> None:
    with_bn = client.submit({**TINY_SPEC, "name": "client-bn", "target_accuracy": 0.3, "telemetry_every": 10})
    without_bn = client.submit(
        {**TINY_SPEC, "name": "client-plain", "batch_norm": False, "target_accuracy": 0.3}
    )
    for job in (with_bn, without_bn):
        job.wait(timeout=60)

    frame = client.metrics([with_bn.id, without_bn.id], names=["val_accuracy"], spec=["batch_norm"])
    by_job = dict(frame.groupby("job")["batch_norm"].first())
    assert by_job == {with_bn.id: True, without_bn.id: False}

    comparison = client.compare([with_bn.id, without_bn.id])
    answer = httpx.get(f"{sqlite_service.url}/v1/compare", params={"ids": [with_bn.id, without_bn.id]}).json()
    assert list(comparison["id"]) == [row["id"] for row in answer["jobs"]]
    for row, wanted in zip(comparison.to_dict("records"), answer["jobs"], strict=True):
        for column in ("final", "best", "steps_to_target", "status", "steps", "speedup_vs_baseline"):
            assert same(row[column], wanted[column]) or row[column] == wanted[column], column
        assert row["spec.batch_norm"] == wanted["spec_diff"]["batch_norm"]
    # Each hidden layer's gradient-based ICS over the run, as the CSV names its columns.
    (bn_row,) = [row for row in comparison.to_dict("records") if row["id"] == with_bn.id]
    (bn_answer,) = [row for row in answer["jobs"] if row["id"] == with_bn.id]
    assert [layer["layer"] for layer in bn_answer["ics"]] == [0] and bn_answer["ics"][0]["probes"] > 0
    assert same(bn_row["ics.layer0.median_gradient_change"], bn_answer["ics"][0]["median_gradient_change"])
    assert same(bn_row["ics.layer0.median_gradient_cosine"], bn_answer["ics"][0]["median_gradient_cosine"])
    assert client.comparison([with_bn.id, without_bn.id])["baseline"] == with_bn.id

    telemetry = with_bn.telemetry()
    layers = httpx.get(f"{sqlite_service.url}/v1/jobs/{with_bn.id}/telemetry").json()["layers"]
    assert len(telemetry) == sum(len(layer["steps"]) for layer in layers) > 0
    first = layers[0]
    assert telemetry.iloc[0]["step"] == first["steps"][0]
    assert same(telemetry.iloc[0]["p50"], first["p50"][0])
    first_layer = telemetry[telemetry["layer"] == first["layer"]]
    for column in ("ics_gradient_change", "ics_gradient_cosine"):
        pairs = zip(first_layer[column], first[column], strict=True)
        assert all(same(value, wanted) for value, wanted in pairs), column

    assert [job.id for job in client.jobs(limit=200) if job.id == with_bn.id] == [with_bn.id]
    assert client.job(with_bn.id).summary == with_bn.refresh().summary


def test_a_sweep_over_noisy_bn_tables_its_points_in_columns_that_group(
    client: bnlab.Client, sqlite_service: RunningService
) -> None:
    noise = {"mean_std": 0.5, "scale_std": 1.0}
    grid = {"bn_noise": [None, noise], "bn_implementation": ["torch"]}
    sweep = client.submit_sweep(NEVER_STARTS_SPEC, grid)  # queued for a GPU: the table needs no results
    table = sweep.table()
    assert list(table["bn_implementation"]) == ["torch", "torch"]
    assert same(table["bn_noise.mean_std"][0], None) and table["bn_noise.mean_std"][1] == 0.5
    assert table["bn_noise.scale_std"][1] == 1.0
    assert len(table.groupby("bn_noise.scale_std", dropna=False)) == 2  # hashable cells
    sweep.cancel()


def test_a_sweep_table_holds_each_grid_point(client: bnlab.Client, sqlite_service: RunningService) -> None:
    sweep = client.submit_sweep(
        {**TINY_SPEC, "target_accuracy": 0.3},
        {"learning_rate": [0.05, 0.2]},
        seeds=[0, 1],
        name="client-sweep",
    )
    sweep.wait(timeout=120)
    view = httpx.get(f"{sqlite_service.url}/v1/sweeps/{sweep.id}").json()
    table = sweep.table()
    assert list(table["learning_rate"]) == [point["point"]["learning_rate"] for point in view["points"]]
    for row, point in zip(table.to_dict("records"), view["points"], strict=True):
        assert row["jobs"] == 2 and row["done"] == point["done"]
        statistic = point["final_accuracy"]
        assert row["final_accuracy_n"] == statistic["n"]
        assert same(row["final_accuracy_mean"], statistic["mean"])
        assert same(row["final_accuracy_ci_low"], (statistic["ci95"] or [None])[0])
    metrics = sweep.metrics(names=["val_accuracy"])
    assert set(metrics["learning_rate"]) == {0.05, 0.2} and set(metrics["seed"]) == {0, 1}
    assert set(metrics["job"]) == set(view["job_ids"])
    assert client.sweep(sweep.id).id == sweep.id
    assert {job.status for job in sweep.jobs} == {"succeeded"}


def test_errors_are_typed_and_carry_the_message(client: bnlab.Client) -> None:
    with pytest.raises(bnlab.NotFound) as not_found:
        client.job("0" * 32)
    assert not_found.value.status_code == 404 and "0" * 32 in not_found.value.message

    with pytest.raises(bnlab.ValidationError) as invalid:
        client.submit({**TINY_SPEC, "learning_rate": -1})
    assert [error.field for error in invalid.value.errors] == ["learning_rate"]
    assert "learning_rate: Input should be greater than 0" in str(invalid.value)

    queued = client.submit(NEVER_STARTS_SPEC)
    assert queued.cancel().status == "cancelled"
    with pytest.raises(bnlab.Conflict) as conflict:
        queued.cancel()
    assert conflict.value.status_code == 409

    with pytest.raises(bnlab.NotFound):
        client.sweep("f" * 32)


def test_an_unreachable_service_is_a_connection_error() -> None:
    with (
        bnlab.Client(url=f"http://127.0.0.1:{free_port()}") as client,
        pytest.raises(bnlab.ConnectionFailed) as error,
    ):
        client.job("0" * 32)
    assert "Cannot connect to the bnlab service" in error.value.message and error.value.status_code is None


def test_the_url_and_key_default_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BNLAB_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("BNLAB_API_KEY", "secret")
    with bnlab.Client() as client:
        assert client.url == "http://127.0.0.1:9"
        assert client.http._http.headers["authorization"] == "Bearer secret"
    monkeypatch.delenv("BNLAB_URL")
    with bnlab.Client(api_key="given") as client:
        assert client.url == "http://127.0.0.1:8000"
        assert client.http._http.headers["authorization"] == "Bearer given"


def test_a_503_is_unavailable() -> None:
    request = httpx.Request("GET", "http://127.0.0.1:8000/v1/jobs")
    error = bnlab.errors.error_for_response(
        httpx.Response(503, json={"detail": "database down"}, request=request)
    )
    assert isinstance(error, bnlab.Unavailable) and isinstance(error, bnlab.ServerError)
    assert error.message == "The service failed (503) on GET /v1/jobs: database down"


def test_a_dataframe_without_pandas_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(bnlab.BnlabError, match=r"pip install 'bnlab\[pandas\]'"):
        bnlab.frames.metrics_frame([], {})


def test_the_client_distribution_needs_only_httpx(tmp_path: Path) -> None:
    project = tomllib.loads((CLIENT_DISTRIBUTION / "pyproject.toml").read_text())["project"]
    assert project["name"] == "bnlab" and project["dependencies"] == ["httpx>=0.27"]
    assert project["optional-dependencies"] == {"pandas": ["pandas>=2"]}
    # Importing it loads none of the server's packages, torch or pandas.
    probe = "import sys, bnlab; print(sorted({m.split('.')[0] for m in sys.modules}))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout
    for package in ("core", "api", "client", "worker", "torch", "pandas", "fastapi", "sqlalchemy"):
        assert f"'{package}'" not in loaded


def test_tag_archive_and_delete_a_job(client: bnlab.Client) -> None:
    job = client.submit(NEVER_STARTS_SPEC)
    assert job.tag("study", "bn", note="the baseline").view["tags"] == ["study", "bn"]
    assert job.tag(remove=["bn"]).view["tags"] == ["study"]
    assert job.refresh().view["note"] == "the baseline"
    assert job.archive().view["archived"] is True
    assert job.id not in [listed.id for listed in client.jobs()]
    job.delete()
    with pytest.raises(bnlab.NotFound):
        job.refresh()


def test_tag_archive_and_delete_a_sweep(client: bnlab.Client, sqlite_service: RunningService) -> None:
    sweep = client.submit_sweep(NEVER_STARTS_SPEC, {"learning_rate": [0.05, 0.2]}, name="client-labels")
    job_ids = sweep.view["job_ids"]

    def listed_sweeps(**params: str) -> list[str]:
        answer = httpx.get(f"{sqlite_service.url}/v1/sweeps", params={"limit": 200, **params}).json()
        return [item["id"] for item in answer["items"]]

    tagged = sweep.tag("study", "lr", note="two rates")
    assert (tagged["id"], tagged["tags"], tagged["note"]) == (sweep.id, ["study", "lr"], "two rates")
    assert sweep.tag(remove=["lr"])["tags"] == ["study"]
    assert sweep.view["note"] == "two rates"  # a tag alone leaves the note as it was
    assert sweep.id in listed_sweeps(tag="study") and sweep.id not in listed_sweeps(tag="lr")
    assert all(client.job(job_id).view["tags"] == [] for job_id in job_ids)  # its jobs keep their own

    assert sweep.archive()["archived"] is True
    assert sweep.id not in listed_sweeps()
    assert not {job.id for job in client.jobs(limit=200)} & set(job_ids)  # its jobs are hidden too
    assert sweep.archive(archived=False)["archived"] is False
    assert sweep.id in listed_sweeps()

    sweep.delete()
    with pytest.raises(bnlab.NotFound):
        _ = sweep.view
    for job_id in job_ids:
        with pytest.raises(bnlab.NotFound):
            client.job(job_id)
    assert sweep.id not in listed_sweeps(archived="all")


def test_upload_list_train_on_and_delete_a_dataset(client: bnlab.Client, tmp_path: Path) -> None:
    name = f"blobs-{uuid.uuid4().hex[:8]}"  # the service is shared: a name of this test's own
    labels = np.arange(60) % 2
    np.savez(
        tmp_path / "blobs.npz", x=np.random.default_rng(0).normal(size=(60, 4)) + labels[:, None], y=labels
    )
    uploaded = client.upload_dataset(name, tmp_path / "blobs.npz")
    assert (uploaded["train_size"], uploaded["input_shape"], uploaded["num_classes"]) == (60, [4], 2)
    assert name in [dataset["name"] for dataset in client.datasets()]
    with pytest.raises(bnlab.ValidationError) as refused:
        client.submit({**TINY_SPEC, "dataset": f"user:{name}-missing"})
    assert "dataset" in str(refused.value)
    client.delete_dataset(name)
    assert name not in [dataset["name"] for dataset in client.datasets()]
