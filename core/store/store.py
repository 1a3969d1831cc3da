"""`Store`: the one object that issues SQL, assembled from its parts (jobs and sweeps, leases and the
sweeper, fused groups, per-step series, target crossings, the reads behind job event streams)."""

from __future__ import annotations

from core.settings import Settings
from core.store.groups import FusedGroupStore
from core.store.idempotency import IdempotencyStore
from core.store.jobs import SweepStore
from core.store.leases import LeaseStore
from core.store.series import SeriesStore
from core.store.targets import TargetStore
from core.store_events import EventStore


class Store(SweepStore, FusedGroupStore, LeaseStore, SeriesStore, TargetStore, EventStore, IdempotencyStore):
    """bnlab's storage on PostgreSQL or SQLite. Thread-safe; create one per process (after a fork, make a
    new one: pooled connections must not cross processes). Every method returns plain records."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        return cls(settings.database_url, settings.database_statement_timeout_seconds)
