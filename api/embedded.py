"""The embedded mode, one command on a machine with nothing but Python: `python -m api.embedded`.

It creates ./var, migrates the SQLite database, starts the API (uvicorn) and one Celery worker as child
processes, prints the URL, and on Ctrl-C or SIGTERM stops both within a few seconds. The worker consumes
`default` and `cpu`, or `default` and `gpu` on a machine with CUDA (`core.devices.detect_device`, which
BNLAB_WORKER_DEVICE_KIND=cpu|cuda overrides), so a `cuda` job trains on the GPU it has. It never waits for a
long job: the worker is shut down cold, and a job it was running is found by the republisher (its lease goes
stale) at the next start and resumes from its last checkpoint.

It logs one line per job event (the worker's task received / finished lines) and per error, not one per
request: uvicorn's access log is off unless `--access-log` or BNLAB_ACCESS_LOG=true asks for it (the
dashboard polls), and Celery's banner and its warning about running as root are left out. A port already
in use (or any address it cannot listen on) is one line and exit status 1, before anything starts.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import make_url

from core.db.migrate import upgrade_database
from core.devices import detect_device, queues_for
from core.settings import VAR_DIR, Settings, get_settings

logger = logging.getLogger("bnlab.embedded")

READY_TIMEOUT_SECONDS = 60.0
# uvicorn stops in well under a second. Celery's cold shutdown of an idle worker on the SQLite broker takes
# ~6 s (it first finishes a broker poll), so the worker is killed after this grace: its state is in the
# database, and the republisher re-publishes a job it was running once that job's lease goes stale.
STOP_GRACE_SECONDS = 3.0
PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>
# Celery warns at every start when the worker runs as root (containers, CI); the embedded worker runs as
# whoever started it on purpose. A warnings filter cannot hold a colon, so the message is cut before its own.
ROOT_WARNING_FILTER = "ignore:You're running the worker with superuser privileges"
CANNOT_LISTEN_EXIT_STATUS = 1


def listen_problem(host: str, port: int) -> str | None:
    """Why the API could not listen on (host, port), in one line; None when it can. Bound with
    SO_REUSEADDR as uvicorn binds, so a port whose last connections linger in TIME_WAIT counts as free."""
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except socket.gaierror as error:
        return f"cannot listen on {host}: {error.strerror}"
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            return (
                f"port {port} on {host} is already in use (is bnlab already running?); "
                f"choose another: make run PORT={port + 1}"
            )
        return f"cannot listen on {host}:{port}: {error.strerror}"
    return None


def port_number(text: str) -> int:
    """argparse type: a TCP port, 1 to 65535."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1 to 65535)")
    return int(text)


def with_warning_filter(environment: dict[str, str], warning_filter: str) -> dict[str, str]:
    """`environment` with `warning_filter` added to PYTHONWARNINGS (keeping the user's own filters)."""
    existing = environment.get("PYTHONWARNINGS")
    return {**environment, "PYTHONWARNINGS": f"{existing},{warning_filter}" if existing else warning_filter}


def sqlite_file(url: str) -> Path | None:
    """The file behind a SQLite database or kombu SQLAlchemy-transport URL; None for a server URL."""
    parsed = make_url(url.removeprefix("sqla+"))
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def prepare_state(settings: Settings) -> None:
    """Create the state folders and bring the database schema up to date."""
    VAR_DIR.mkdir(exist_ok=True)
    for url in (settings.database_url, settings.broker_url):
        path = sqlite_file(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    upgrade_database(settings.database_url)


def die_with_parent(death_signal: signal.Signals) -> Callable[[], None]:
    """A pre-exec hook asking Linux to signal the child when this launcher dies (even by SIGKILL), so an
    orphaned server never keeps the port or the database busy."""

    def hook() -> None:
        if sys.platform.startswith("linux"):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(death_signal))

    return hook


def trusted_hosts_with(trusted_hosts: str, bind_host: str) -> str:
    """The trusted hosts setting with the address the API binds added: the URL this launcher prints works."""
    listed = [host.strip() for host in trusted_hosts.split(",") if host.strip()]
    bound = f"[{bind_host}]" if ":" in bind_host and not bind_host.startswith("[") else bind_host
    return ",".join(listed if bound.lower() in (host.lower() for host in listed) else [*listed, bound])


class EmbeddedService:
    """The two child processes, each in a session of its own (a terminal's Ctrl-C reaches only the
    launcher, which decides how each child stops)."""

    def __init__(self, host: str, port: int, access_log: bool, worker_queues: str) -> None:
        self.url = f"http://{host}:{port}"
        # uvicorn's own start-up lines are INFO too: at WARNING only its errors remain, and the launcher
        # says where the service is. The access log's lines are INFO, so asking for them lowers the level.
        uvicorn_logging = ["--access-log", "--log-level", "info"] if access_log else [
            "--no-access-log", "--log-level", "warning"]  # fmt: skip
        self.api = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.main:app", "--host", host, "--port", str(port),
             *uvicorn_logging],
            env={**os.environ, "BNLAB_TRUSTED_HOSTS": trusted_hosts_with(get_settings().trusted_hosts, host)},
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGTERM),
        )  # fmt: skip
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "--quiet", "-A", "worker.app", "worker", "--pool=prefork",
             "--concurrency=1", "-Q", worker_queues, "--loglevel=INFO"],
            env=with_warning_filter(dict(os.environ), ROOT_WARNING_FILTER),
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGKILL),
        )  # fmt: skip
        logger.info(
            "started the API (pid %d) and a worker (pid %d) consuming %s",
            self.api.pid,
            self.worker.pid,
            worker_queues,
        )

    def children(self) -> list[subprocess.Popen[bytes]]:
        return [self.api, self.worker]

    def first_exited(self) -> subprocess.Popen[bytes] | None:
        return next((child for child in self.children() if child.poll() is not None), None)

    def wait_until_ready(self, stop: threading.Event) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline and not stop.is_set() and self.first_exited() is None:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1):
                    return True
            except (urllib.error.URLError, OSError):
                stop.wait(0.2)
        return False

    def stop(self) -> None:
        """uvicorn shuts down gracefully on SIGTERM (in-flight requests are short); the worker gets
        SIGQUIT, Celery's cold shutdown, which ends a running task instead of waiting for it."""
        for child, stop_signal in ((self.api, signal.SIGTERM), (self.worker, signal.SIGQUIT)):
            if child.poll() is None:
                child.send_signal(stop_signal)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in self.children():
            try:
                child.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.info("pid %d did not stop within %.0f s; killing it", child.pid, STOP_GRACE_SECONDS)
        # Each child leads its own process group: this also ends a worker's pool process left behind.
        for child in self.children():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()


def worker_queues(settings: Settings) -> str:
    """The queues of the embedded worker: `default` plus `gpu` when it trains on CUDA, else `cpu`."""
    return ",".join(queues_for(detect_device(settings)))


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m api.embedded", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address the API listens on")
    parser.add_argument("--port", type=port_number, default=8000, help="port the API listens on")
    parser.add_argument(
        "--access-log",
        action="store_true",
        help="log one line per HTTP request (off by default; also BNLAB_ACCESS_LOG=true)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    # Alembic's context lines at every start say nothing; a migration that fails still raises.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    arguments = parse_arguments(argv)
    problem = listen_problem(arguments.host, arguments.port)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return CANNOT_LISTEN_EXIT_STATUS
    settings = get_settings()
    prepare_state(settings)
    queues = worker_queues(settings)

    stop = threading.Event()
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, lambda _signum, _frame: stop.set())

    service = EmbeddedService(
        arguments.host, arguments.port, arguments.access_log or settings.access_log, queues
    )
    try:
        if service.wait_until_ready(stop):
            logger.info(
                "bnlab is running at %s (API docs at %s/docs); Ctrl-C stops it", service.url, service.url
            )
        while not stop.is_set():
            exited = service.first_exited()
            if exited is not None:
                logger.error("pid %d exited with status %s; stopping", exited.pid, exited.returncode)
                return 1
            stop.wait(0.5)
        logger.info("stopping")
        return 0
    finally:
        service.stop()
        logger.info("stopped")


if __name__ == "__main__":
    sys.exit(main())
