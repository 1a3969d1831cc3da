"""How the CLI shows workers (`bnlab workers`) and a job nobody can take (its `waiting_for`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from rich.table import Table
from rich.text import Text

from client.render import MISSING, number


def device_text(device: object) -> str:
    """ "cuda: NVIDIA H200 ×2, 140 GB each" or "cpu: AMD EPYC, 16 CPUs" (torch's threads are in --json)."""
    if not isinstance(device, Mapping):
        return MISSING
    if device.get("kind") == "cuda":
        memory = device.get("memory_mb")
        each = f", {memory / 1024:.0f} GB each" if isinstance(memory, int | float) else ""
        return f"cuda: {device.get('name')} ×{number(device.get('count'))}{each}"
    return f"cpu: {device.get('name')}, {number(device.get('count'))} CPUs"


def seen_ago(last_seen: object, now: datetime | None = None) -> str:
    """How long ago a worker was last seen ("3 s ago", "4 min ago", "2 h ago"), by this computer's clock."""
    if not isinstance(last_seen, str):
        return MISSING
    try:
        seconds = ((now or datetime.now(UTC)) - datetime.fromisoformat(last_seen)).total_seconds()
    except (ValueError, TypeError):
        return last_seen
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.0f} h ago"


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
    table.add_column("worker", overflow="fold")
    table.add_column("queues", no_wrap=True)
    table.add_column("device", overflow="fold")
    table.add_column("training", no_wrap=True)  # whole ids, for `bnlab show`
    table.add_column("last seen", no_wrap=True)
    table.add_column("alive", no_wrap=True)
    for worker in items:
        alive = bool(worker.get("alive"))
        table.add_row(
            f"{worker.get('name') or worker.get('host')} (pid {worker.get('pid')})",
            ",".join(worker.get("queues") or []),
            device_text(worker.get("device")),
            training_text(worker.get("training")),
            seen_ago(worker.get("last_seen")),
            Text("yes" if alive else "gone", style="green" if alive else "dim"),
        )
    return table


def waiting_line(job: Mapping[str, Any]) -> str | None:
    """ "Waiting: <why>" for a job that no live worker can take, else None."""
    reason = job.get("waiting_for")
    return f"Waiting: {reason}." if reason else None
