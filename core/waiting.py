"""Why a queued job may wait for ever: no live worker consumes its queue. Said in one sentence on the job's
view (`waiting_for`), so that a `cuda` job on a machine without a GPU worker does not wait in silence.

Submitting such a job still succeeds: a worker may come (a GPU node joining later takes it).
"""

from __future__ import annotations

from collections.abc import Iterable

from core.spec import queue_for_device

WORKER_COMMAND = "celery -A worker.app worker --pool=prefork --concurrency=1 -Q default,{kind}"


def waiting_for(device: str, live_worker_queues: Iterable[Iterable[str]]) -> str | None:
    """The sentence for a queued job of `device` when none of the live workers (each given by the queues it
    consumes) takes its queue; None when one does."""
    queue = queue_for_device(device)
    if any(queue in queues for queues in live_worker_queues):
        return None
    if queue == "gpu":
        how = f"on a machine with a GPU with `{WORKER_COMMAND.format(kind='gpu')}` (or `make run` there)"
    else:
        how = f"with `{WORKER_COMMAND.format(kind='cpu')}` (or `make run`)"
    return f"no live worker consumes the {queue} queue; start one {how}"
