"""The embedded mode, one command on a machine with nothing but Python: `python -m api.embedded`.

It creates ./var, migrates the SQLite database, starts the API (uvicorn) and one Celery worker as child
processes, prints the URL, and on Ctrl-C or SIGTERM stops both within a few seconds. It never waits for a
long job: the worker is shut down cold, and a job it was running is found by the sweeper (its lease goes
stale) at the next start and resumes from its last checkpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import os
import signal
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
from core.settings import VAR_DIR, Settings, get_settings

logger = logging.getLogger("bnlab.embedded")

READY_TIMEOUT_SECONDS = 60.0
# uvicorn stops in well under a second. Celery's cold shutdown of an idle worker on the SQLite broker takes
# ~6 s (it first finishes a broker poll), so the worker is killed after this grace: its state is in the
# database, and the sweeper re-publishes a job it was running once that job's lease goes stale.
STOP_GRACE_SECONDS = 3.0
WORKER_QUEUES = "default,cpu"
PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


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

    def __init__(self, host: str, port: int) -> None:
        self.url = f"http://{host}:{port}"
        self.api = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.main:app", "--host", host, "--port", str(port)],
            env={**os.environ, "BNLAB_TRUSTED_HOSTS": trusted_hosts_with(get_settings().trusted_hosts, host)},
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGTERM),
        )
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "--pool=prefork",
             "--concurrency=1", "-Q", WORKER_QUEUES, "--loglevel=INFO"],
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGKILL),
        )  # fmt: skip
        logger.info("started the API (pid %d) and a worker (pid %d)", self.api.pid, self.worker.pid)

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


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m api.embedded", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address the API listens on")
    parser.add_argument("--port", type=int, default=8000, help="port the API listens on")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    arguments = parse_arguments(argv)
    prepare_state(get_settings())

    stop = threading.Event()
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, lambda _signum, _frame: stop.set())

    service = EmbeddedService(arguments.host, arguments.port)
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
