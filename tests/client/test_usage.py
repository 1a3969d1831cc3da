"""The command line as a newcomer meets it, no service needed (or a server that is not bnlab): --version,
-h, help that names its placeholders, a URL without a scheme, the wrong kind of file, compare of one job."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from click.testing import Result
from typer.testing import CliRunner

from client.cli import app

SPEC = {"architecture": {"kind": "mlp"}, "batch_norm": True, "learning_rate": 0.1, "dropout": 0.0}
SWEEP = {"name": "bn or not", "base": SPEC, "grid": {"batch_norm": [True, False]}, "seeds": [0, 1]}
# Every command, for the help check (the sweep commands under `sweep`).
COMMANDS = [
    [],
    ["submit"],
    ["watch"],
    ["jobs"],
    ["show"],
    ["cancel"],
    ["compare"],
    ["plot"],
    ["sweep"],
    ["sweep", "submit"],
    ["sweep", "watch"],
    ["sweep", "list"],
    ["sweep", "show"],
    ["sweep", "cancel"],
]


def bnlab(*arguments: str) -> Result:
    return CliRunner().invoke(
        app, list(arguments), env={"COLUMNS": "200", "BNLAB_URL": "", "BNLAB_API_KEY": ""}
    )


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_version_prints_the_installed_version() -> None:
    result = bnlab("--version")
    assert result.exit_code == 0
    assert result.stdout == f"bnlab {version('bnlab')}\n"


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: " ".join(command) or "bnlab")
def test_dash_h_is_help_and_names_placeholders_not_python_types(command: list[str]) -> None:
    short, long = bnlab(*command, "-h"), bnlab(*command, "--help")
    assert short.exit_code == long.exit_code == 0, short.output
    assert short.stdout == long.stdout
    assert "Usage: " in short.stdout
    assert not re.search(r"<(bool|str|int|float|path|list\[\w+\])>", short.stdout), short.stdout


def test_help_names_what_each_option_takes() -> None:
    shown = bnlab("compare", "-h").stdout
    assert re.search(r"--target +ACCURACY", shown) and re.search(r"--plot +FILE", shown)
    assert re.search(r"--json +Print", shown), "a flag takes no value, so it shows none"
    assert re.search(r"--url +URL", bnlab("-h").stdout)


def test_a_url_without_a_scheme_means_http() -> None:
    port = closed_port()
    result = bnlab("--url", f"127.0.0.1:{port}", "jobs")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: Cannot connect to the bnlab service at http://127.0.0.1:{port} (connection refused); "
        "start it with `make run`, or point --url / BNLAB_URL at it."
    ]


def test_a_url_of_another_scheme_is_a_usage_error() -> None:
    result = bnlab("--url", "ftp://127.0.0.1:8000", "jobs")
    assert result.exit_code == 2
    assert "must be an http:// or https:// URL" in result.output


class HtmlPages(BaseHTTPRequestHandler):
    """A web server that is not bnlab: an HTML page for everything, 404 under /v1/jobs/."""

    def do_GET(self) -> None:
        status = 404 if self.path.startswith("/v1/jobs/") else 200
        page = b"<!DOCTYPE html>\n<html><head><title>Welcome</title></head>\n" + b"<p>hello</p>\n" * 200
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *_arguments: object) -> None:
        pass


@pytest.fixture
def other_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), HtmlPages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("command", [["jobs"], ["show", "0" * 32]], ids=["an html 200", "an html 404"])
def test_a_server_that_is_not_bnlab_is_one_short_line(other_server: str, command: list[str]) -> None:
    result = bnlab("--url", other_server, *command)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    [line] = result.stderr.splitlines()
    assert "<html" not in line and len(line) < 200, line
    assert f"{other_server} answered with text/html, not bnlab's JSON: is it a bnlab service?" in line


def test_a_sweep_file_given_to_submit_names_the_command_that_takes_it(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(SWEEP))
    result = bnlab("--url", f"127.0.0.1:{closed_port()}", "submit", str(path))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: {path} is a sweep file (base, grid, seeds): use `bnlab sweep submit {path}`."
    ]


def test_a_job_file_given_to_sweep_submit_names_the_command_that_takes_it(tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(SPEC))
    result = bnlab("--url", f"127.0.0.1:{closed_port()}", "sweep", "submit", str(path))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"error: {path} is a job spec file: use `bnlab submit {path}`."]


def test_compare_needs_two_jobs() -> None:
    result = bnlab("--url", f"127.0.0.1:{closed_port()}", "compare", "a" * 32)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: compare needs two or more job ids (bnlab show ID shows one job)."
    ]
