"""`Store`: the one object that issues SQL, assembled from its parts, one module each: jobs, sweeps, fused
groups, leases (the worker's side of a job), re-publication of lost jobs, per-step series, target
crossings, the reads behind job event streams, housekeeping (labels, deletes), uploaded datasets, the
worker registry, the counts operators scrape and Idempotency-Keys. Each part implements its Protocol in
`core.store.interface`, where the docstrings say what every method promises."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.settings import Settings
from core.store.datasets import DatasetStore
from core.store.events import EventStore
from core.store.fused_groups import FusedGroupStore
from core.store.housekeeping import HousekeepingStore
from core.store.idempotency import IdempotencyStore
from core.store.interface import StoreInterface
from core.store.jobs import JobStore
from core.store.leases import LeaseStore
from core.store.operations import OperationsStore
from core.store.republish import RepublishStore
from core.store.series import SeriesStore
from core.store.sweeps import SweepStore
from core.store.targets import TargetStore
from core.store.workers import WorkerStore


class Store(
    JobStore,
    SweepStore,
    FusedGroupStore,
    LeaseStore,
    RepublishStore,
    SeriesStore,
    TargetStore,
    EventStore,
    HousekeepingStore,
    DatasetStore,
    WorkerStore,
    OperationsStore,
    IdempotencyStore,
):
    """bnlab's storage on PostgreSQL or SQLite. Thread-safe; create one per process (after a fork, make a
    new one: pooled connections must not cross processes). Every method returns plain records."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        return cls(settings.database_url, settings.database_statement_timeout_seconds)


if TYPE_CHECKING:

    def _keeps_every_promise(url: str) -> StoreInterface:
        """For mypy alone: `Store` implements every method `StoreInterface` declares, with a compatible
        signature (a method left out stays abstract, and creating a `Store` is then an error)."""
        return Store(url)
