"""This worker in the registry (`core.store.workers`): registered when Celery says it is ready, refreshed
with its heartbeat, marked stopped at a clean shutdown; a worker killed outright ages out instead.

It all runs in a thread of the worker's main process, which is the one that lives as long as the worker
(pool processes come and go) and the one that knows which task its pool is running: Celery's parent keeps
the requests its pool has accepted. A change of what it trains is written within `POLL_SECONDS`, without
waiting for the next heartbeat. The device is probed in that thread too (`core.devices.detect_device`
asks a child process), so that a slow torch import never delays the worker's start.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from celery.signals import worker_ready, worker_shutdown
from celery.worker import state as worker_state
from sqlalchemy.exc import SQLAlchemyError

from core.devices import DeviceFacts, detect_device
from core.queue import TRAIN_GROUP_TASK, TRAIN_TASK
from core.settings import Settings
from core.store import Store, WorkerTraining
from core.store.workers import new_worker_id

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.25
STOP_TIMEOUT_SECONDS = 5.0

# The training task's request as Celery's parent keeps it: (task name, positional arguments).
RunningTask = tuple[str, tuple[Any, ...]]


def running_tasks() -> list[RunningTask]:
    """The training tasks this worker's pool is running now (read from another thread: the set may change
    while it is copied, and is then read again)."""
    for _attempt in range(3):
        try:
            requests = list(worker_state.active_requests)
            return [(request.name, tuple(request.args)) for request in requests]
        except RuntimeError:
            continue
    return []


def job_ids_training(tasks: Iterable[RunningTask]) -> tuple[list[str], bool] | None:
    """(the job ids, whether they are a fused group) of the first training task among `tasks`."""
    for name, arguments in tasks:
        if name == TRAIN_TASK and arguments:
            return [str(arguments[0])], False
        if name == TRAIN_GROUP_TASK and arguments:
            return [str(job_id) for job_id in arguments[0]], True
    return None


class WorkerRegistration:
    """Keeps one worker's row in the registry from a background thread, from `start()` to `stop()`."""

    def __init__(
        self,
        settings: Settings,
        name: str,
        queues: list[str],
        tasks: Callable[[], list[RunningTask]] = running_tasks,
    ) -> None:
        self.settings = settings
        self.name = name
        self.queues = sorted(queues)
        self.tasks = tasks
        self.worker_id = new_worker_id()
        self.registered = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._keep, name="worker-registry", daemon=True)
        self._store = Store.from_settings(settings)
        # Pool processes are forked from this one: a child must never use (or close) these connections.
        os.register_at_fork(after_in_child=lambda: self._store.engine.dispose(close=False))
        self._device: DeviceFacts | None = None
        self._training: WorkerTraining | None = None
        self._training_key: tuple[list[str], bool] | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop heartbeating and say the worker is gone (when the database answers)."""
        self._stopped.set()
        self._thread.join(STOP_TIMEOUT_SECONDS)
        if self.registered.is_set():
            try:
                self._store.worker_stopped(self.worker_id)
            except SQLAlchemyError:
                logger.warning("could not mark worker %s stopped; it ages out", self.worker_id)
        self._store.dispose()

    def _register(self) -> None:
        if self._device is None:  # probed once: a retry after a database error does not probe again
            self._device = detect_device(self.settings)
        device = self._device
        self._store.register_worker(
            self.worker_id, self.name, socket.gethostname(), os.getpid(), self.queues, device.as_json()
        )
        self.registered.set()
        logger.info("registered as worker %s on %s (%s)", self.worker_id, device.name, ",".join(self.queues))

    def _current_training(self) -> WorkerTraining | None:
        key = job_ids_training(self.tasks())
        if key != self._training_key:
            # The group's id first: when reading it fails, the change is taken up again next time.
            self._training = None if key is None else WorkerTraining(key[0], self._group_of(key))
            self._training_key = key
        return self._training

    def _group_of(self, key: tuple[list[str], bool]) -> str | None:
        job_ids, is_group = key
        if not is_group:
            return None
        job = self._store.get_job(job_ids[0])
        return None if job is None else job.fused_group

    def _keep(self) -> None:
        next_heartbeat = 0.0  # register (or heartbeat) at once
        written: WorkerTraining | None = None
        while not self._stopped.is_set():
            try:
                if not self.registered.is_set():
                    self._register()
                    next_heartbeat = time.monotonic() + self.settings.heartbeat_seconds
                training = self._current_training()
                if training != written or time.monotonic() >= next_heartbeat:
                    if not self._store.worker_heartbeat(self.worker_id, training):
                        self.registered.clear()  # its row was deleted: register again
                        continue
                    written = training
                    next_heartbeat = time.monotonic() + self.settings.heartbeat_seconds
            except SQLAlchemyError:
                logger.warning("worker registry: the database did not answer", exc_info=True)
            self._stopped.wait(min(POLL_SECONDS, self.settings.heartbeat_seconds))


_registration: list[WorkerRegistration] = []  # this process's, once Celery says the worker is ready


def connect_registry(settings: Settings) -> None:
    """Register the worker when Celery says it is ready, and say it is gone when it shuts down."""

    @worker_ready.connect(weak=False)
    def _register(sender: Any, **_signal: object) -> None:
        queues = list(sender.app.amqp.queues.consume_from)
        registration = WorkerRegistration(settings, sender.hostname, queues)
        registration.start()
        _registration.append(registration)

    @worker_shutdown.connect(weak=False)
    def _unregister(**_signal: object) -> None:
        while _registration:
            _registration.pop().stop()
