"""Every `bnlab` command against the real running service (API + worker, embedded mode), and the one-line
errors a person sees when the service says no."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from bnlab.errors import describe_validation_errors
from click.testing import Result
from pydantic import ValidationError
from typer.testing import CliRunner

from client.cli import app
from core.spec import JobSpec
from tests.fixtures.service import NEVER_STARTS_SPEC, SLOW_SPEC, TINY_SPEC, RunningService

# A relu net without BN at a learning rate of 100 overflows within a hundred steps (at step 71 for seed 0).
DIVERGING_SPEC: dict[str, Any] = {
    **TINY_SPEC,
    "architecture": {"kind": "mlp", "hidden": [64, 64], "activation": "relu"},
    "batch_norm": False,
    "learning_rate": 100.0,
    "steps": 100,
}


@pytest.fixture
def service(sqlite_service: RunningService) -> RunningService:
    return sqlite_service


def bnlab(service: RunningService, *arguments: str) -> Result:
    """Runs `bnlab --url <service> ...` in this process, with a wide terminal so tables are not cut."""
    environment = {"COLUMNS": "200", "BNLAB_API_KEY": "", "BNLAB_URL": ""}
    return CliRunner().invoke(app, ["--url", service.url, *arguments], env=environment)


def write_spec(directory: Path, spec: dict[str, Any], name: str = "spec.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(spec) if name.endswith(".yaml") else json.dumps(spec))
    return path


def submitted_id(result: Result) -> str:
    assert result.exit_code == 0, result.output
    first_line = result.stdout.splitlines()[0]
    assert first_line.startswith("Submitted job "), first_line
    return first_line.removeprefix("Submitted job ").split()[0]


def single_error_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# -- submit ------------------------------------------------------------------------------------------


def test_submit_sends_the_file_with_its_overrides(service: RunningService, tmp_path: Path) -> None:
    spec_file = write_spec(tmp_path, NEVER_STARTS_SPEC)
    result = bnlab(
        service, "submit", str(spec_file), "--set", "learning_rate=1.0", "--set", "architecture.hidden=[8, 4]"
    )
    job_id = submitted_id(result)
    # No worker consumes the gpu queue here: the answer says why the job waits, and so does `show`.
    waiting_for = service.job(job_id)["waiting_for"]
    assert "no live worker consumes the gpu queue" in waiting_for
    assert result.stdout.splitlines() == [f"Submitted job {job_id} (queued).", f"Waiting: {waiting_for}."]
    shown = bnlab(service, "show", job_id)
    assert re.search(r"^waiting for +no live worker consumes the gpu queue", shown.stdout, re.MULTILINE)
    spec = service.job(job_id)["spec"]
    assert spec["learning_rate"] == 1.0
    assert spec["architecture"]["hidden"] == [8, 4]
    assert spec["batch_size"] == NEVER_STARTS_SPEC["batch_size"]
    httpx.post(f"{service.url}/v1/jobs/{job_id}/cancel").raise_for_status()


def test_submit_json_prints_the_created_job(service: RunningService, tmp_path: Path) -> None:
    result = bnlab(service, "submit", str(write_spec(tmp_path, NEVER_STARTS_SPEC, "spec.json")), "--json")
    assert result.exit_code == 0, result.output
    job = json.loads(result.stdout)
    assert job["status"] == "queued"
    assert job["spec"]["device"] == "cuda"
    assert service.job(job["id"])["id"] == job["id"]
    httpx.post(f"{service.url}/v1/jobs/{job['id']}/cancel").raise_for_status()


def test_submit_watch_follows_the_job_to_its_end(service: RunningService, tmp_path: Path) -> None:
    result = bnlab(service, "submit", str(write_spec(tmp_path, TINY_SPEC)), "--watch")
    job_id = submitted_id(result)
    job = service.job(job_id)
    assert job["status"] == "succeeded"
    steps = TINY_SPEC["steps"]
    assert f"{steps}/{steps}" in result.stdout, "the bar ends at step/steps"
    accuracy = job["summary"]["final_val_accuracy"]
    assert result.stdout.splitlines()[-1].startswith(
        f"Job {job_id} succeeded after {steps} steps: val accuracy {accuracy:.3g}"
    )


def fastapi_detail(body: dict[str, Any]) -> list[dict[str, Any]]:
    """What FastAPI answers for a body JobSpec rejects: pydantic's errors with `body` before each loc."""
    with pytest.raises(ValidationError) as raised:
        JobSpec.model_validate(body)
    return [{"loc": ["body", *error["loc"]], "msg": error["msg"]} for error in raised.value.errors()]


def test_submit_of_an_invalid_spec_names_each_field_and_what_is_wrong(
    service: RunningService, tmp_path: Path
) -> None:
    overrides = ["learning_rate=-1", "dropout=1.5", "learning_rat=0.1"]
    arguments = [argument for override in overrides for argument in ("--set", override)]
    result = bnlab(service, "submit", str(write_spec(tmp_path, TINY_SPEC)), *arguments)
    body = {**TINY_SPEC, "learning_rate": -1, "dropout": 1.5, "learning_rat": 0.1}
    expected = describe_validation_errors(fastapi_detail(body))
    assert single_error_line(result) == f"error: Invalid request (422): {expected}"
    for field in ("learning_rate: ", "dropout: ", "learning_rat: "):
        assert field in expected


def test_submit_of_a_missing_file_is_one_line(service: RunningService, tmp_path: Path) -> None:
    line = single_error_line(bnlab(service, "submit", str(tmp_path / "absent.yaml")))
    assert line.startswith("error: Cannot read ") and "absent.yaml" in line


# -- watch -------------------------------------------------------------------------------------------


def test_watch_of_a_finished_job_replays_it_and_exits_0(service: RunningService) -> None:
    job_id = service.submit(TINY_SPEC)
    service.wait_until_finished(job_id)
    result = bnlab(service, "watch", job_id)
    assert result.exit_code == 0, result.output
    assert f"Job {job_id} succeeded after" in result.stdout


def test_watch_json_prints_each_event_as_a_line(service: RunningService) -> None:
    job_id = service.submit(TINY_SPEC)
    result = bnlab(service, "watch", job_id, "--json")
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    statuses = [event["data"]["status"] for event in events if event["event"] == "status"]
    assert statuses == ["queued", "running", "succeeded"]
    metric_steps = [event["data"]["step"] for event in events if event["event"] == "metrics"]
    assert metric_steps == sorted(metric_steps) and metric_steps[-1] == TINY_SPEC["steps"]
    assert events[-1]["id"] == "status:3"


def test_watch_exits_4_when_the_job_diverged(service: RunningService) -> None:
    job_id = service.submit(DIVERGING_SPEC)
    result = bnlab(service, "watch", job_id)
    job = service.job(job_id)
    assert job["status"] == "diverged", job
    assert result.exit_code == 4, result.output
    diverged_at = job["summary"]["diverged_at_step"]
    assert result.stdout.splitlines()[-1] == f"Job {job_id} diverged at step {diverged_at}."


def test_watch_exits_5_when_the_job_is_cancelled(service: RunningService) -> None:
    job_id = service.submit(NEVER_STARTS_SPEC)
    cancel = bnlab(service, "cancel", job_id)
    assert cancel.exit_code == 0 and cancel.stdout == f"Cancel requested for job {job_id}.\n"
    result = bnlab(service, "watch", job_id)
    assert result.exit_code == 5, result.output
    assert result.stdout.splitlines()[-1] == f"Job {job_id} was cancelled at step 0."


def test_ctrl_c_detaches_from_watch_without_cancelling(service: RunningService) -> None:
    job_id = service.submit(NEVER_STARTS_SPEC)
    environment = {**os.environ, "BNLAB_URL": service.url, "BNLAB_API_KEY": ""}
    watcher = subprocess.Popen(
        [sys.executable, "-c", "from client.cli import app; app()", "watch", job_id],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(2.0)  # connected and waiting for a job that does not move
        assert watcher.poll() is None, watcher.communicate()
        watcher.send_signal(signal.SIGINT)
        _, stderr = watcher.communicate(timeout=10)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    assert watcher.returncode == 130
    assert stderr.splitlines() == [
        f"Detached; job {job_id} keeps running (bnlab watch {job_id} to follow it again)."
    ]
    assert service.job(job_id)["status"] == "queued", "leaving the watch did not cancel the job"
    httpx.post(f"{service.url}/v1/jobs/{job_id}/cancel").raise_for_status()


def test_ctrl_c_detaches_from_a_sweep_watch_without_cancelling(service: RunningService) -> None:
    sweep = {"name": "never starts", "base": NEVER_STARTS_SPEC, "grid": {"learning_rate": [0.05, 0.1]}}
    answer = httpx.post(f"{service.url}/v1/sweeps", json=sweep).json()
    environment = {**os.environ, "BNLAB_URL": service.url, "BNLAB_API_KEY": ""}
    watcher = subprocess.Popen(
        [sys.executable, "-c", "from client.cli import app; app()", "sweep", "watch", answer["id"]],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(2.0)  # polling a sweep that does not move
        assert watcher.poll() is None, watcher.communicate()
        watcher.send_signal(signal.SIGINT)
        _, stderr = watcher.communicate(timeout=10)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    assert watcher.returncode == 130
    assert stderr.splitlines() == [
        f"Detached; sweep {answer['id']} goes on (bnlab sweep watch {answer['id']} to follow it again)."
    ]
    assert {service.job(job_id)["status"] for job_id in answer["job_ids"]} == {"queued"}
    httpx.post(f"{service.url}/v1/sweeps/{answer['id']}/cancel").raise_for_status()


def test_watch_of_an_unknown_job_is_one_line(service: RunningService) -> None:
    unknown = uuid.uuid4().hex
    assert (
        single_error_line(bnlab(service, "watch", unknown))
        == f"error: Not found (404): job {unknown} not found"
    )


# -- jobs, show, cancel ------------------------------------------------------------------------------


def test_jobs_lists_newest_first_and_filters_by_status(service: RunningService) -> None:
    finished = service.submit(TINY_SPEC)
    service.wait_until_finished(finished)
    queued = service.submit(NEVER_STARTS_SPEC)

    listing = bnlab(service, "jobs")
    assert listing.exit_code == 0, listing.output
    assert listing.stdout.index(queued) < listing.stdout.index(finished)

    succeeded = bnlab(service, "jobs", "--status", "succeeded", "--json")
    assert succeeded.exit_code == 0, succeeded.output
    items = json.loads(succeeded.stdout)["items"]
    assert finished in {job["id"] for job in items}
    assert {job["status"] for job in items} == {"succeeded"}

    paged = bnlab(service, "jobs", "--limit", "1")
    assert paged.exit_code == 0 and queued in paged.stdout and finished not in paged.stdout
    assert paged.stdout.splitlines()[-1].startswith("More: bnlab jobs --cursor ")
    httpx.post(f"{service.url}/v1/jobs/{queued}/cancel").raise_for_status()


def test_jobs_with_an_unknown_status_is_one_line(service: RunningService) -> None:
    line = single_error_line(bnlab(service, "jobs", "--status", "done"))
    assert line.startswith("error: Invalid request (422): query parameter status: Input should be 'queued'")


def test_show_prints_the_job_and_json_is_the_services_answer(service: RunningService) -> None:
    job_id = service.submit(TINY_SPEC)
    job = service.wait_until_finished(job_id)
    shown = bnlab(service, "show", job_id)
    assert shown.exit_code == 0, shown.output
    for text in (job_id, "succeeded", "final val accuracy", f"{job['summary']['final_val_accuracy']:.4g}"):
        assert text in shown.stdout
    assert re.search(r"^execution +separate \(a task of its own\)", shown.stdout, re.MULTILINE)
    as_json = bnlab(service, "show", job_id, "--json")
    assert json.loads(as_json.stdout) == service.job(job_id)


def test_show_names_the_normalization_kind(service: RunningService) -> None:
    plain = {**NEVER_STARTS_SPEC, "batch_norm": False}
    specs = {
        r"group \(4 groups\)": {**plain, "normalization": "group", "groups": 4},
        r"batch with noise: m ~ N\(0, 0\.5²\), log s ~ N\(0, 2²\)": {
            **NEVER_STARTS_SPEC,
            "bn_noise": {"mean_std": 0.5, "scale_std": 2.0},
        },
        "layer": {**plain, "normalization": "layer"},
        "none": plain,
    }
    for kind, spec in specs.items():
        job_id = service.submit(spec)
        shown = bnlab(service, "show", job_id)
        assert shown.exit_code == 0, shown.output
        assert re.search(rf"^normalization +{kind} *$", shown.stdout, re.MULTILINE), shown.stdout
        httpx.post(f"{service.url}/v1/jobs/{job_id}/cancel").raise_for_status()


def test_show_of_an_unknown_job_is_one_line(service: RunningService) -> None:
    unknown = uuid.uuid4().hex
    assert (
        single_error_line(bnlab(service, "show", unknown))
        == f"error: Not found (404): job {unknown} not found"
    )


def test_cancelling_a_finished_job_is_a_conflict_in_one_line(service: RunningService) -> None:
    job_id = service.submit(TINY_SPEC)
    service.wait_until_finished(job_id)
    line = single_error_line(bnlab(service, "cancel", job_id))
    assert line == f"error: Conflict (409): job {job_id} has already finished (succeeded)"


def test_cancel_stops_a_running_job(service: RunningService) -> None:
    job_id = service.submit(SLOW_SPEC)
    service.wait_for(job_id, frozenset({"running"}))
    assert bnlab(service, "cancel", job_id).exit_code == 0
    assert service.wait_until_finished(job_id)["status"] == "cancelled"


# -- compare, plot, sweeps -----------------------------------------------------------------------------


def test_compare_shows_the_rows_and_saves_the_curves(service: RunningService, tmp_path: Path) -> None:
    with_bn = service.submit({**TINY_SPEC, "telemetry_every": 10})  # and its gradient-based ICS
    without_bn = service.submit({**TINY_SPEC, "batch_norm": False})
    for job_id in (with_bn, without_bn):
        service.wait_until_finished(job_id)
    picture = tmp_path / "curves.png"
    result = bnlab(service, "compare", without_bn, with_bn, "--target", "0.2", "--plot", str(picture))
    assert result.exit_code == 0, result.output
    answer = httpx.get(
        f"{service.url}/v1/compare", params={"ids": [without_bn, with_bn], "target": 0.2}
    ).json()
    assert f"{without_bn[:8]} (baseline)" in result.stdout
    assert "batch_norm=true" in result.stdout
    for row in answer["jobs"]:
        assert f"{row['final']:.3g}" in result.stdout
    assert picture.read_bytes().startswith(b"\x89PNG")
    assert result.stdout.splitlines()[-1] == f"Wrote {picture} ({picture.stat().st_size:,} bytes)."
    # The one hidden layer's ICS medians of the job run with telemetry; the other has none to show.
    (ics,) = next(row["ics"] for row in answer["jobs"] if row["id"] == with_bn)
    assert "gradient-based ICS" in result.stdout

    def lines_of(job_id: str) -> list[str]:
        return [line for line in result.stdout.splitlines() if line.strip().startswith(job_id[:8])]

    assert len(lines_of(without_bn)) == 1  # its compare row only
    _, ics_row = lines_of(with_bn)  # its compare row, then its one hidden layer
    cells = [cell.strip() for cell in ics_row.split("│")]
    assert cells[1:] == [
        "1",
        f"{ics['median_gradient_change']:.3g}",
        f"{ics['median_gradient_cosine']:.4g}",
        str(ics["probes"]),
    ]

    as_json = bnlab(
        service, "compare", without_bn, with_bn, "--target", "0.2", "--baseline", with_bn, "--json"
    )
    assert json.loads(as_json.stdout)["baseline"] == with_bn


def test_compare_with_an_unknown_job_is_one_line(service: RunningService) -> None:
    known = service.submit(NEVER_STARTS_SPEC)
    line = single_error_line(bnlab(service, "compare", known, uuid.uuid4().hex))
    assert line.startswith("error: Not found (404): ")
    httpx.post(f"{service.url}/v1/jobs/{known}/cancel").raise_for_status()


def test_plot_saves_the_ics_picture(service: RunningService, tmp_path: Path) -> None:
    job_id = service.submit({**TINY_SPEC, "telemetry_every": 10})
    service.wait_until_finished(job_id)
    picture = tmp_path / "ics.svg"
    result = bnlab(service, "plot", job_id, "--ics", str(picture))
    assert result.exit_code == 0, result.output
    assert b"<svg" in picture.read_bytes()[:500]

    # Santurkar's gradient-based ICS, beside a twin without BN: the service's picture, as it draws it.
    twin = service.submit({**TINY_SPEC, "telemetry_every": 10, "batch_norm": False})
    service.wait_until_finished(twin)
    gradient = tmp_path / "ics-gradient.png"
    result = bnlab(service, "plot", job_id, "--ics-gradient", str(gradient), "--compare-with", twin)
    assert result.exit_code == 0, result.output
    served = httpx.get(
        f"{service.url}/v1/jobs/{job_id}/plots/ics-gradient", params={"compare_with": twin, "format": "png"}
    )
    assert gradient.read_bytes() == served.content and served.content.startswith(b"\x89PNG")
    assert single_error_line(bnlab(service, "plot", job_id)) == (
        "error: plot needs --ics FILE, --ics-gradient FILE or both."
    )


def test_plot_of_a_job_without_telemetry_is_one_line(service: RunningService, tmp_path: Path) -> None:
    job_id = service.submit(TINY_SPEC)
    service.wait_until_finished(job_id)
    line = single_error_line(bnlab(service, "plot", job_id, "--ics", str(tmp_path / "ics.png")))
    assert line.startswith("error: Not found (404): ")
    assert not (tmp_path / "ics.png").exists()


def test_sweep_submit_watch_and_show(service: RunningService, tmp_path: Path) -> None:
    sweep = {"name": "bn or not", "base": TINY_SPEC, "grid": {"batch_norm": [True, False]}, "seeds": [0, 1]}
    result = bnlab(service, "sweep", "submit", str(write_spec(tmp_path, sweep, "sweep.yaml")), "--watch")
    assert result.exit_code == 0, result.output
    first = result.stdout.splitlines()[0]
    assert first.startswith("Submitted sweep ") and first.endswith(" (4 jobs).")
    sweep_id = first.removeprefix("Submitted sweep ").split()[0]
    assert result.stdout.splitlines()[-1] == f"Sweep {sweep_id} finished: succeeded 4."
    total = 4 * TINY_SPEC["steps"]
    assert f"{total}/{total} steps" in result.stdout, "the bar counts the training steps of all jobs"
    assert "jobs 4/4" in result.stdout

    shown = bnlab(service, "sweep", "show", sweep_id)
    assert shown.exit_code == 0, shown.output
    answer = httpx.get(f"{service.url}/v1/sweeps/{sweep_id}").json()
    for point in answer["points"]:
        final = point["final_accuracy"]
        low, high = final["ci95"]  # the mean, and its interval on the line below
        assert re.search(rf"{final['mean']:.3g} .*\n.*\[{low:.3g}, {high:.3g}\]", shown.stdout), shown.stdout
    assert "batch_norm=true" in shown.stdout and "batch_norm=false" in shown.stdout
    arms = bnlab(service, "sweep", "show", sweep_id, "--arm", "batch_norm", "--baseline", "false")
    assert arms.exit_code == 0, arms.output
    tuned = httpx.get(
        f"{service.url}/v1/sweeps/{sweep_id}", params={"arm": "batch_norm", "baseline": "false"}
    ).json()["tuned"]
    assert "batch_norm arms · baseline false" in arms.stdout
    assert tuned["criterion"] in " ".join(arms.stdout.split())
    difference = tuned["arms"][0]["final_accuracy_vs_baseline"]
    assert f"batch_norm=true, final: {difference['verdict']}" in arms.stdout
    # The same jobs compared as arms: the first id (BN on) is the baseline, so its arm is too.
    compared = bnlab(service, "compare", *answer["job_ids"], "--arm", "batch_norm")
    assert compared.exit_code == 0, compared.output
    assert "batch_norm arms · baseline true" in compared.stdout
    assert "batch_norm=false, final: " in compared.stdout
    # The default execution is fused: BN on and BN off train as two groups of two.
    groups = answer["execution"]["fused_groups"]
    assert [group["size"] for group in groups] == [2, 2]
    for group in groups:
        assert re.search(rf"fused group {group['id']} +│ +2 │ succeeded 2", shown.stdout), shown.stdout
    assert "separate" not in shown.stdout
    assert json.loads(bnlab(service, "sweep", "show", sweep_id, "--json").stdout) == answer

    member = bnlab(service, "show", groups[0]["job_ids"][1])
    assert re.search(
        rf"^execution +fused group {groups[0]['id']} \(2 jobs trained together\)", member.stdout, re.MULTILINE
    ), member.stdout


def test_a_sweep_shown_into_a_pipe_keeps_every_column(service: RunningService, tmp_path: Path) -> None:
    """Piped (no terminal, no COLUMNS), the wide table of a sweep is not cut at 80 characters: its last
    columns — steps to target, reached, diverged — are all there."""
    sweep = {"name": "piped", "base": TINY_SPEC, "grid": {"batch_norm": [True, False]}, "seeds": [0]}
    submitted = bnlab(service, "sweep", "submit", str(write_spec(tmp_path, sweep, "sweep.yaml")), "--watch")
    assert submitted.exit_code == 0, submitted.output
    sweep_id = submitted.stdout.splitlines()[0].removeprefix("Submitted sweep ").split()[0]
    environment = {"COLUMNS": None, "BNLAB_API_KEY": "", "BNLAB_URL": ""}
    shown = CliRunner().invoke(app, ["--url", service.url, "sweep", "show", sweep_id], env=environment)
    assert shown.exit_code == 0, shown.output
    header = next(line for line in shown.stdout.splitlines() if "grid point" in line)
    assert len(header) > 80
    for column in ("final accuracy", "best accuracy", "steps to target", "reached", "diverged"):
        assert column in header, header


def test_sweep_submit_of_an_invalid_grid_is_one_line(service: RunningService, tmp_path: Path) -> None:
    sweep = {"base": TINY_SPEC, "grid": {"learning_rate": [0.1, -1.0]}}
    line = single_error_line(
        bnlab(service, "sweep", "submit", str(write_spec(tmp_path, sweep, "sweep.yaml")))
    )
    assert line.startswith("error: Invalid request (422): ")
    assert "learning_rate" in line


def test_sweep_show_of_an_unknown_sweep_is_one_line(service: RunningService) -> None:
    line = single_error_line(bnlab(service, "sweep", "show", uuid.uuid4().hex))
    assert line.startswith("error: Not found (404): ")


def test_sweep_list_shows_each_sweep_with_its_execution_and_statuses(
    service: RunningService, tmp_path: Path
) -> None:
    fused = {"name": "listed fused", "base": TINY_SPEC, "grid": {"learning_rate": [0.05, 0.1]}}
    separate = {**fused, "name": "listed separate"}
    fused_id = httpx.post(f"{service.url}/v1/sweeps", json=fused).json()["id"]
    path = write_spec(tmp_path, separate, "sweep.json")
    submitted = bnlab(service, "sweep", "submit", str(path), "--execution", "separate")
    assert submitted.exit_code == 0, submitted.output
    separate_id = submitted.stdout.removeprefix("Submitted sweep ").split()[0]
    for sweep_id in (fused_id, separate_id):
        for job_id in httpx.get(f"{service.url}/v1/sweeps/{sweep_id}").json()["job_ids"]:
            service.wait_until_finished(job_id)

    listed = bnlab(service, "sweep", "list", "--limit", "200")
    assert listed.exit_code == 0, listed.output
    rows = {line.split()[0]: line for line in listed.stdout.splitlines() if line.split()}
    assert re.search(r"listed fused +│ +2 │ fused +│ succeeded 2", rows[fused_id]), listed.stdout
    assert re.search(r"listed separate +│ +2 │ separate +│ succeeded 2", rows[separate_id]), listed.stdout
    # newest first, and --json is the service's page
    assert listed.stdout.index(separate_id) < listed.stdout.index(fused_id)
    page = json.loads(bnlab(service, "sweep", "list", "--json", "--limit", "1").stdout)
    assert [item["id"] for item in page["items"]] == [separate_id]
    assert page["next_cursor"]
    following = bnlab(service, "sweep", "list", "--limit", "1", "--cursor", page["next_cursor"])
    assert fused_id in following.stdout and separate_id not in following.stdout


def test_sweep_cancel_stops_its_unfinished_jobs_and_a_finished_sweep_is_a_conflict(
    service: RunningService,
) -> None:
    # Separate jobs on one worker: one runs, three are queued (and cancelled at once, so the sweep the
    # service answers with counts them as finished already: the count must be the one before the cancel).
    sweep = {
        "name": "to cancel",
        "base": SLOW_SPEC,
        "grid": {"learning_rate": [0.05, 0.1]},
        "seeds": [0, 1],
        "execution": "separate",
    }
    answer = httpx.post(f"{service.url}/v1/sweeps", json=sweep).json()
    service.wait_for(answer["job_ids"][0], frozenset({"running"}))

    result = bnlab(service, "sweep", "cancel", answer["id"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"Cancel requested for the 4 unfinished jobs of sweep {answer['id']}."
    assert {service.wait_until_finished(job_id)["status"] for job_id in answer["job_ids"]} == {"cancelled"}

    line = single_error_line(bnlab(service, "sweep", "cancel", answer["id"]))
    assert line == f"error: Conflict (409): every job of sweep {answer['id']} has finished"
