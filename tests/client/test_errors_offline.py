"""Failures that need no running service: a service that is not there, and how a 422 is worded."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
import yaml
from bnlab.errors import describe_validation_errors, error_for_response
from pydantic import ValidationError
from typer.testing import CliRunner

from client.cli import app
from core.spec import JobSpec


def closed_port_url() -> str:
    """A URL on this machine where nothing listens (the port was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def spec_files(tmp_path: Path) -> Path:
    spec = {"architecture": {"kind": "mlp"}, "batch_norm": True, "learning_rate": 0.1, "dropout": 0.0}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    (tmp_path / "sweep.yaml").write_text(
        yaml.safe_dump({"base": spec, "grid": {"batch_norm": [True, False]}})
    )
    return tmp_path


@pytest.mark.parametrize(
    "arguments",
    [
        ["submit", "{dir}/spec.yaml"],
        ["watch", "0" * 32],
        ["jobs"],
        ["jobs", "--status", "running"],
        ["show", "0" * 32],
        ["cancel", "0" * 32],
        ["compare", "a" * 32, "b" * 32, "--target", "0.9"],
        ["sweep", "submit", "{dir}/sweep.yaml"],
        ["sweep", "show", "0" * 32],
        ["plot", "0" * 32, "--ics", "{dir}/ics.png"],
    ],
)
def test_every_command_says_in_one_line_that_the_service_is_not_there(
    arguments: list[str], spec_files: Path
) -> None:
    url = closed_port_url()
    command = [argument.format(dir=spec_files) for argument in arguments]
    result = CliRunner().invoke(app, ["--url", url, *command])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: Cannot connect to the bnlab service at {url} (connection refused); "
        "start it with `make run`, or point --url / BNLAB_URL at it."
    ]
    assert result.stdout == ""
    assert not (spec_files / "ics.png").exists()


def test_the_url_comes_from_bnlab_url_when_no_option_is_given() -> None:
    url = closed_port_url()
    result = CliRunner().invoke(app, ["jobs"], env={"BNLAB_URL": url})
    assert result.exit_code == 1
    assert f"at {url} " in result.stderr


def test_a_spec_file_that_does_not_parse_is_one_line_before_anything_is_sent(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text("architecture: [mlp\n")
    result = CliRunner().invoke(app, ["--url", closed_port_url(), "submit", str(tmp_path / "spec.yaml")])
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1
    assert "spec.yaml is not valid YAML" in result.stderr


def test_a_set_without_a_value_is_one_line(spec_files: Path) -> None:
    arguments = [
        "--url",
        closed_port_url(),
        "submit",
        str(spec_files / "spec.yaml"),
        "--set",
        "learning_rate",
    ]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: --set 'learning_rate' must look like key=value (e.g. learning_rate=1.0)."
    ]


def test_a_plot_file_must_say_its_format(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--url", closed_port_url(), "plot", "0" * 32, "--ics", "out.jpg"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == ["error: out.jpg must end in .png or .svg (the picture's format)."]


def fastapi_422_detail(body: dict[str, object]) -> list[dict[str, object]]:
    """The `detail` list FastAPI answers a body that JobSpec rejects with (it prefixes `body` to `loc`)."""
    with pytest.raises(ValidationError) as raised:
        JobSpec.model_validate(body)
    return [
        {"loc": ["body", *error["loc"]], "msg": error["msg"], "type": error["type"]}
        for error in raised.value.errors()
    ]


def test_a_422_names_each_field_and_what_is_wrong_with_it() -> None:
    body = {
        "architecture": {"kind": "mlp", "hidden": [0]},
        "batch_norm": True,
        "learning_rate": -1,
        "dropout": 0.0,
        "learning_rat": 0.1,
    }
    detail = fastapi_422_detail(body)
    line = describe_validation_errors(detail)
    problems = line.split("; ")
    assert len(problems) == len(detail) == 3
    messages = {str(error["msg"]) for error in detail}
    fields = {problem.split(": ", 1)[0] for problem in problems}
    assert fields == {"architecture.mlp.hidden.0", "learning_rate", "learning_rat"}
    assert {problem.split(": ", 1)[1] for problem in problems} == messages
    assert "\n" not in line


def test_a_422_on_a_query_parameter_says_so() -> None:
    detail = [{"loc": ["query", "limit"], "msg": "Input should be greater than 0", "type": "greater_than"}]
    assert describe_validation_errors(detail) == "query parameter limit: Input should be greater than 0"


def answer(status: int, detail: object, headers: dict[str, str] | None = None) -> httpx.Response:
    request = httpx.Request("POST", "http://127.0.0.1:8000/v1/jobs", headers=headers or {})
    return httpx.Response(status, json={"detail": detail}, request=request)


def test_a_401_says_whether_a_key_was_sent() -> None:
    without_key = error_for_response(answer(401, "missing API key"))
    with_key = error_for_response(answer(401, "invalid API key", {"Authorization": "Bearer wrong"}))
    assert without_key.message == "Not authorized (401): set BNLAB_API_KEY to an API key."
    assert with_key.message == "Not authorized (401): the API key in BNLAB_API_KEY was rejected."


def test_a_403_names_what_the_key_may_not_do() -> None:
    error = error_for_response(answer(403, "read-only key", {"Authorization": "Bearer reader"}))
    assert error.message == "Forbidden (403): this API key may not POST /v1/jobs (read-only key)."


def test_a_server_error_without_json_is_still_one_line() -> None:
    request = httpx.Request("GET", "http://127.0.0.1:8000/v1/jobs")
    error = error_for_response(httpx.Response(502, text="Bad gateway\n<html>\n</html>", request=request))
    assert "\n" not in error.message
    assert error.message.startswith("The service failed (502) on GET /v1/jobs: Bad gateway")
