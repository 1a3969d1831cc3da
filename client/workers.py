"""How the CLI shows workers (`bnlab workers`) and a job nobody can take (its `waiting_for`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.table import Table
from rich.text import Text

from client.render import MISSING, number, timestamp


def device_text(device: object) -> str:
    """ "cuda: NVIDIA H200 ×2, 143,771 MB each" or "cpu: AMD EPYC, 16 CPUs, 1 thread"."""
    if not isinstance(device, Mapping):
        return MISSING
    memory = device.get("memory_mb")
    threads = device.get("threads")
    thread_text = f"{number(threads)} thread{'' if threads == 1 else 's'}"
    if device.get("kind") == "cuda":
        each = f", {number(memory)} MB each" if memory is not None else ""
        return f"cuda: {device.get('name')} ×{number(device.get('count'))}{each}, {thread_text}"
    return f"cpu: {device.get('name')}, {number(device.get('count'))} CPUs, {thread_text}"


def training_text(training: object) -> str:
    """The job it trains, or the fused group and how many jobs it has; `idle`."""
    if not isinstance(training, Mapping) or not training.get("job_ids"):
        return "idle"
    job_ids = list(training["job_ids"])
    if training.get("group_id"):
        return f"fused group {training['group_id']} ({len(job_ids)} jobs)"
    return f"job {job_ids[0]}"


def workers_table(items: list[dict[str, Any]]) -> Table:
    table = Table(show_edge=False, header_style="bold")
    table.add_column("name", overflow="fold")
    table.add_column("pid", justify="right", no_wrap=True)
    table.add_column("queues", no_wrap=True)
    table.add_column("device", overflow="fold")
    table.add_column("training", overflow="fold")
    table.add_column("last seen", no_wrap=True)
    table.add_column("alive", no_wrap=True)
    for worker in items:
        alive = bool(worker.get("alive"))
        table.add_row(
            str(worker.get("name") or worker.get("host")),
            str(worker.get("pid")),
            ",".join(worker.get("queues") or []),
            device_text(worker.get("device")),
            training_text(worker.get("training")),
            timestamp(worker.get("last_seen")),
            Text("yes" if alive else "gone", style="green" if alive else "dim"),
        )
    return table


def waiting_line(job: Mapping[str, Any]) -> str | None:
    """ "Waiting: <why>" for a job that no live worker can take, else None."""
    reason = job.get("waiting_for")
    return f"Waiting: {reason}." if reason else None
