"""The answers to POSTs sent with an `Idempotency-Key`, kept for their retries.

A request with a key first *claims* it: one INSERT whose primary key (route, key) lets exactly one of
several concurrent requests through. The winner creates what it was asked for and *completes* the claim
with its answer (or *releases* it when it failed, so a retry can try again); everyone else reads what is
stored: the body's digest, and the answer once there is one. A record older than the window is dropped
when its key comes again (and with every claim, so the table holds one window's keys); so is a claim
left unanswered longer than any request takes, as by a process that died in between.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from core.db.tables import IdempotentRequest
from core.store.base import StoreBase
from core.store.interface_support import IdempotencyStoreInterface
from core.store.views import StoredAnswer

idempotent_request_table: sa.Table = IdempotentRequest.__table__  # type: ignore[assignment]
CLAIM_ATTEMPTS = 3  # a claim released between our INSERT and our read is claimed again


class IdempotencyStore(StoreBase, IdempotencyStoreInterface):
    def claim_idempotency_key(
        self, route: str, key: str, request_sha256: str, window_seconds: float, abandoned_after_seconds: float
    ) -> StoredAnswer | None:
        """None when this caller now holds the key (it must complete or release it); otherwise what the
        earlier request with this key stored."""
        table = idempotent_request_table.c
        for _ in range(CLAIM_ATTEMPTS):
            with self._engine.begin() as connection:
                connection.execute(
                    sa.delete(idempotent_request_table).where(
                        sa.or_(
                            table.created_at < self._seconds_ago(window_seconds),
                            sa.and_(
                                table.route == route,
                                table.key == key,
                                table.status_code.is_(None),
                                table.created_at < self._seconds_ago(abandoned_after_seconds),
                            ),
                        )
                    )
                )
            try:
                with self._engine.begin() as connection:
                    connection.execute(
                        sa.insert(idempotent_request_table).values(
                            route=route, key=key, request_sha256=request_sha256, created_at=self._now()
                        )
                    )
                return None
            except IntegrityError:
                pass
            with self._engine.connect() as connection:
                row = connection.execute(
                    sa.select(table.request_sha256, table.status_code, table.response).where(
                        table.route == route, table.key == key
                    )
                ).first()
            if row is not None:
                return StoredAnswer(row.request_sha256, row.status_code, row.response)
        raise RuntimeError(f"the Idempotency-Key {key!r} kept being claimed and released")

    def complete_idempotency_key(
        self, route: str, key: str, status_code: int, response: dict[str, Any]
    ) -> None:
        """Stores the answer of the request that holds the key."""
        table = idempotent_request_table.c
        with self._engine.begin() as connection:
            connection.execute(
                sa.update(idempotent_request_table)
                .where(table.route == route, table.key == key, table.status_code.is_(None))
                .values(status_code=status_code, response=response)
            )

    def release_idempotency_key(self, route: str, key: str) -> None:
        """Gives up an unanswered claim (its request failed), so a retry with the key starts afresh."""
        table = idempotent_request_table.c
        with self._engine.begin() as connection:
            connection.execute(
                sa.delete(idempotent_request_table).where(
                    table.route == route, table.key == key, table.status_code.is_(None)
                )
            )
