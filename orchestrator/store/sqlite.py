"""SQLite's writes: portable statements, several to a transaction.

SQLite has no data-modifying CTEs and no ``SKIP LOCKED``; its
``BEGIN IMMEDIATE`` (see :mod:`orchestrator.store.engine`) orders writers
instead, so reading then writing inside one transaction is safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from orchestrator.store.errors import NotNewest
from orchestrator.store.history import insert_events, write_transition
from orchestrator.store.rows import HistoryEvent, StoredSaga, saga_from_row
from orchestrator.store.schema import definitions_table, start_keys_table
from orchestrator.store.schema import sagas_table as sagas


async def _newer_definition_exists(conn: AsyncConnection, name: str, version: int) -> bool:
    newer = sa.select(definitions_table.c.version).where(
        definitions_table.c.name == name, definitions_table.c.version > version
    )
    return (await conn.execute(newer.limit(1))).first() is not None


class SqliteWrites:
    """The writes as SQLite runs them, each in one transaction of ``engine``."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(
        self,
        row: dict[str, Any],
        start_key: tuple[str, str] | None,
        started: HistoryEvent,
        newest_only: bool,
    ) -> None:
        """Insert the saga row, its start key and first event; :class:`NotNewest` if outdated."""
        async with self.engine.begin() as conn:
            definition = (row["definition_name"], row["definition_version"])
            if newest_only and await _newer_definition_exists(conn, *definition):
                raise NotNewest(definition[0])
            await conn.execute(sa.insert(sagas), [row])
            if start_key is not None:
                await conn.execute(
                    sa.insert(start_keys_table),
                    [
                        {
                            "key": start_key[0],
                            "request_hash": start_key[1],
                            "saga_id": row["id"],
                            "created_at": row["created_at"],
                        }
                    ],
                )
            await insert_events(conn, row["id"], [started])

    async def claim(
        self, due: sa.Select[Any], owner: str, expires: datetime
    ) -> list[tuple[StoredSaga, str | None]]:
        """Lease the rows ``due`` picks; each with the owner whose lease ran out, if any."""
        async with self.engine.begin() as conn:
            previous = {row.id: row.lease_owner for row in await conn.execute(due)}
            if not previous:
                return []
            stmt = (
                sa.update(sagas)
                .where(sagas.c.id.in_(list(previous)))
                .values(
                    lease_owner=owner,
                    lease_expires_at=expires,
                    wake_at=expires,
                    version=sagas.c.version + 1,
                )
                .returning(*sagas.c)
            )
            rows = (await conn.execute(stmt)).all()
        return [(saga_from_row(r), previous[r.id]) for r in rows]

    async def record(
        self,
        saga: StoredSaga,
        values: dict[str, Any],
        now: datetime,
        history: Sequence[HistoryEvent],
    ) -> bool:
        """Write ``values`` and ``history`` if the row is still at ``saga.version``."""
        async with self.engine.begin() as conn:
            return await write_transition(conn, saga.id, saga.version, values, history)

    async def announce_due(self, conn: AsyncConnection) -> None:
        """Nothing: only PostgreSQL notifies; other workers find the saga at their next poll."""

    async def announce_due_now(self) -> None:
        """Nothing: only PostgreSQL notifies; other workers find the saga at their next poll."""
