"""The cache of finished jobs' series keeps the most recently used entries within its capacity."""

from __future__ import annotations

from api.compare.loading import FinishedSeriesCache
from core.compare import Series


def entry(step: int) -> tuple[Series, tuple[int, float] | None]:
    return Series([step], [0.5]), None


def test_least_recently_used_entries_are_dropped_first() -> None:
    cache = FinishedSeriesCache(capacity=2)
    cache.put("a", entry(1))
    cache.put("b", entry(2))
    assert cache.get("a") == entry(1)  # "a" is now the most recently used
    cache.put("c", entry(3))
    assert cache.get("b") is None
    assert cache.get("a") == entry(1) and cache.get("c") == entry(3)
