"""Uploaded datasets: blobs kept once per SHA-256, names that refer to them, and the in-use check that
keeps a dataset from being deleted under a job that will train on it."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from core.datasets import USER_PREFIX
from core.db.tables import DatasetBlob, UserDataset
from core.store.base import StoreBase, job_table
from core.store.interface_support import DatasetDeleteOutcome, DatasetStoreInterface
from core.store.views import DatasetView

dataset_table: sa.Table = UserDataset.__table__  # type: ignore[assignment]
dataset_blob_table: sa.Table = DatasetBlob.__table__  # type: ignore[assignment]


def _dataset_view(row: Row[*tuple[object, ...]]) -> DatasetView:
    fields = row._mapping
    return DatasetView(
        name=fields["name"],
        sha256=fields["sha256"],
        train_size=fields["train_size"],
        val_size=fields["val_size"],
        input_shape=list(fields["input_shape"]),
        num_classes=fields["num_classes"],
        created_at=fields["created_at"],
    )


class DatasetStore(StoreBase, DatasetStoreInterface):
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
        with self._engine.begin() as connection:
            if self._dataset_row(connection, name) is not None:
                return None
            known = sa.select(dataset_blob_table.c.sha256).where(dataset_blob_table.c.sha256 == sha256)
            if connection.scalar(known) is None:
                connection.execute(
                    dataset_blob_table.insert().values(sha256=sha256, size_bytes=len(blob), blob=blob)
                )
            connection.execute(
                dataset_table.insert().values(
                    name=name,
                    sha256=sha256,
                    train_size=train_size,
                    val_size=val_size,
                    input_shape=list(input_shape),
                    num_classes=num_classes,
                    created_at=self._now(),
                )
            )
            row = self._dataset_row(connection, name)
        assert row is not None
        return _dataset_view(row)

    def get_dataset(self, name: str) -> DatasetView | None:
        with self._engine.connect() as connection:
            row = self._dataset_row(connection, name)
        return None if row is None else _dataset_view(row)

    def list_datasets(self) -> list[DatasetView]:
        with self._engine.connect() as connection:
            rows = connection.execute(sa.select(dataset_table).order_by(dataset_table.c.name)).all()
        return [_dataset_view(row) for row in rows]

    def read_dataset_blob(self, name: str) -> tuple[str, bytes] | None:
        query = sa.select(dataset_blob_table.c.sha256, dataset_blob_table.c.blob).join(
            dataset_table, dataset_table.c.sha256 == dataset_blob_table.c.sha256
        )
        with self._engine.connect() as connection:
            row = connection.execute(query.where(dataset_table.c.name == name)).first()
        return None if row is None else (row.sha256, bytes(row.blob))

    def delete_dataset(self, name: str) -> DatasetDeleteOutcome:
        with self._engine.begin() as connection:
            row = self._dataset_row(connection, name)
            if row is None:
                return "not_found"
            unfinished_specs = connection.scalars(
                sa.select(job_table.c.spec).where(job_table.c.status.in_(("queued", "running")))
            )
            if any(spec.get("dataset") == f"{USER_PREFIX}{name}" for spec in unfinished_specs):
                return "in_use"
            connection.execute(dataset_table.delete().where(dataset_table.c.name == name))
            still_named = sa.select(dataset_table.c.id).where(dataset_table.c.sha256 == row.sha256)
            if connection.scalar(still_named.limit(1)) is None:
                connection.execute(
                    dataset_blob_table.delete().where(dataset_blob_table.c.sha256 == row.sha256)
                )
        return "deleted"

    @staticmethod
    def _dataset_row(connection: Connection, name: str) -> Row[*tuple[object, ...]] | None:
        return connection.execute(sa.select(dataset_table).where(dataset_table.c.name == name)).first()
