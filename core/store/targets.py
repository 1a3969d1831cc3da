"""Where stored series first met a target, found in SQL at full resolution, and the read a comparison
makes of each of its jobs: the downsampled series together with that crossing.

A comparison reads its series downsampled; the crossing step must not be. The rollup finds the first block
that holds a crossing, then only that block's points are looked at.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.store import rollup_reads
from core.store.base import StoreBase
from core.store.interface import TargetStoreInterface
from core.store.views import Crossing, SeriesWithCrossing


class TargetStore(StoreBase, TargetStoreInterface):
    def first_step_meeting(
        self, job_id: str, name: str, target: float, higher_is_better: bool
    ) -> Crossing | None:
        with self._engine.connect() as connection:
            row_id = self._job_row_id(connection, job_id)
            name_id = rollup_reads.known_name_ids(connection, self._metric_name_ids, [name]).get(name)
            if name_id is None:
                return None
            crossings = rollup_reads.first_steps_meeting(
                connection, self.is_postgres, [row_id], name_id, target, higher_is_better
            )
        return crossings.get(row_id)

    def read_series_with_crossings(
        self,
        job_ids: Sequence[str],
        name: str,
        max_points: int,
        target: float | None,
        higher_is_better: bool,
    ) -> dict[str, SeriesWithCrossing]:
        """All jobs in two statements on one connection: a request that compares ten jobs makes a handful
        of round trips, not dozens."""
        if max_points < rollup_reads.POINTS_PER_BUCKET:
            raise ValueError(f"max_points must be at least {rollup_reads.POINTS_PER_BUCKET}")
        with self._engine.connect() as connection:
            row_ids = self._job_row_ids_of(connection, job_ids)
            name_id = rollup_reads.known_name_ids(connection, self._metric_name_ids, [name]).get(name)
            series: dict[rollup_reads.SeriesKey, list[rollup_reads.Point]] = {}
            crossings: dict[int, Crossing] = {}
            if name_id is not None:
                series = rollup_reads.downsampled_series(
                    connection, self.is_postgres, list(row_ids.values()), [name_id], max_points
                )
                if target is not None:
                    crossings = rollup_reads.first_steps_meeting(
                        connection,
                        self.is_postgres,
                        list(row_ids.values()),
                        name_id,
                        target,
                        higher_is_better,
                    )
        read: dict[str, SeriesWithCrossing] = {}
        for job_id, row_id in row_ids.items():
            points = series.get((row_id, name_id), []) if name_id is not None else []
            steps, values = rollup_reads.as_lists(points)
            read[job_id] = SeriesWithCrossing(steps, values, crossings.get(row_id))
        return read
