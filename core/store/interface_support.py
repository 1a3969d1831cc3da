"""The Protocols of the store's supporting parts, composed into `StoreInterface` by `core.store.interface`:
housekeeping of finished work (tags, notes, archive, delete), users' datasets, the worker registry, the
counts operators scrape, and `Idempotency-Key`s of POST requests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol

from core.store.views import (
    DatasetView,
    JobCount,
    JobView,
    StoredAnswer,
    WorkerTraining,
    WorkerView,
)

DatasetDeleteOutcome = Literal["deleted", "not_found", "in_use"]  # in_use: a queued or running job needs it
DeleteOutcome = Literal["deleted", "not_found", "unfinished"]  # unfinished: a job is queued or running


class HousekeepingStoreInterface(Protocol):
    """Looking after past work: labels on jobs and sweeps, and deleting finished ones."""

    def label_job(
        self,
        job_id: str,
        tags: Sequence[str] | None = None,
        note: str | None = None,
        archived: bool | None = None,
    ) -> JobView | None:
        """Replace the job's tags, note and archived flag (each only when given); the job after it, or None
        when it does not exist. Tags are validated by the caller (`core.housekeeping`)."""
        ...

    def label_sweep(
        self,
        sweep_id: str,
        tags: Sequence[str] | None = None,
        note: str | None = None,
        archived: bool | None = None,
    ) -> bool:
        """As `label_job`, for a sweep (its jobs keep their own labels; archiving a sweep hides its jobs from
        `list_jobs` too); False when it does not exist."""
        ...

    def delete_job(self, job_id: str) -> DeleteOutcome:
        """Delete a finished job and every row of it (metrics, rollup, telemetry, landscape, checkpoint, its
        place in a fused group, the group when it was the last) in one transaction. `unfinished` (nothing
        deleted) while it is queued or running: cancel it and wait for it to stop first."""
        ...

    def delete_sweep(self, sweep_id: str) -> DeleteOutcome:
        """Delete a sweep whose jobs have all finished, with all of them and its fused groups, in one
        transaction; `unfinished` (nothing deleted) while any of its jobs is queued or running."""
        ...


class DatasetStoreInterface(Protocol):
    """Uploaded datasets: blobs by SHA-256 and the names that refer to them."""

    def save_dataset(
        self,
        name: str,
        blob: bytes,
        *,
        sha256: str,
        train_size: int,
        val_size: int,
        input_shape: Sequence[int],
        num_classes: int,
    ) -> DatasetView | None:
        """Store `blob` (once per SHA-256, `sha256` its digest) and name it `name`, with what it holds, in one
        transaction; None (nothing stored) when that name is taken."""
        ...

    def get_dataset(self, name: str) -> DatasetView | None: ...

    def list_datasets(self) -> list[DatasetView]:
        """Every dataset, by name."""
        ...

    def read_dataset_blob(self, name: str) -> tuple[str, bytes] | None:
        """(SHA-256, blob) of the named dataset, or None."""
        ...

    def delete_dataset(self, name: str) -> DatasetDeleteOutcome:
        """Delete the name, and its blob when no other name refers to it; `in_use` (nothing deleted) while a
        queued or running job trains on it."""
        ...


class WorkerStoreInterface(Protocol):
    """The worker registry: each worker process's row, written by the worker's main process at start and
    with each heartbeat; alive while it has not stopped and was seen within `alive_seconds` (the lease
    time)."""

    def register_worker(
        self, worker_id: str, name: str, host: str, pid: int, queues: list[str], device: dict[str, Any]
    ) -> None:
        """Write (or rewrite) the worker's row as started now; forget workers gone for a day."""
        ...

    def worker_heartbeat(self, worker_id: str, training: WorkerTraining | None) -> bool:
        """Mark the worker seen now, training `training`; False when its row is gone (register again)."""
        ...

    def worker_stopped(self, worker_id: str) -> None:
        """The worker shut down cleanly: it is gone at once, without waiting to age out."""
        ...

    def list_workers(self, alive_seconds: float, include_gone: bool = False) -> list[WorkerView]:
        """Live workers, then — with `include_gone` — the others, each by host, then start."""
        ...

    def live_worker_devices(self, alive_seconds: float) -> list[tuple[list[str], dict[str, Any]]]:
        """(queues, device) of each live worker: who can take a job of which queue, on what hardware."""
        ...


class OperationsStoreInterface(Protocol):
    """What `GET /metrics` reports, read with one grouped query each."""

    def job_counts(self) -> list[JobCount]:
        """Every job counted by status and spec device (one entry per pair that has jobs)."""
        ...

    def training_model_steps_per_second(self) -> float:
        """The latest rate of every running job, summed (each model of a fused group counts)."""
        ...


class IdempotencyStoreInterface(Protocol):
    """`Idempotency-Key`s of POST requests: one claim per (route, key), the answer stored once given."""

    def claim_idempotency_key(
        self, route: str, key: str, request_sha256: str, window_seconds: float, abandoned_after_seconds: float
    ) -> StoredAnswer | None:
        """None when this caller now holds the key (it must complete or release it); otherwise what the
        earlier request with this key stored. Claims older than `window_seconds`, and unanswered ones older
        than `abandoned_after_seconds`, are forgotten first."""
        ...

    def complete_idempotency_key(
        self, route: str, key: str, status_code: int, response: dict[str, Any]
    ) -> None:
        """Store the answer of the request that holds the key."""
        ...

    def release_idempotency_key(self, route: str, key: str) -> None:
        """Give up an unanswered claim (its request failed), so a retry with the key starts afresh."""
        ...
