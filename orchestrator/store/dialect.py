"""The writes whose SQL differs by database, chosen once per engine."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from orchestrator.store.engine import single_statements
from orchestrator.store.postgres import PostgresWrites
from orchestrator.store.rows import HistoryEvent, StoredSaga
from orchestrator.store.sqlite import SqliteWrites


class DialectWrites(Protocol):
    """What a database dialect implements for :class:`~orchestrator.store.sagas.SagaWriter`."""

    async def create(
        self,
        row: dict[str, Any],
        start_key: tuple[str, str] | None,
        started: HistoryEvent,
        newest_only: bool,
    ) -> None:
        """Insert the saga row, its start key and first event; :class:`NotNewest` if outdated."""

    async def claim(
        self, due: sa.Select[Any], owner: str, expires: datetime
    ) -> list[tuple[StoredSaga, str | None]]:
        """Lease the rows ``due`` picks; each with the owner whose lease ran out, if any."""

    async def record(
        self,
        saga: StoredSaga,
        values: dict[str, Any],
        now: datetime,
        history: Sequence[HistoryEvent],
    ) -> bool:
        """Write ``values`` and ``history`` if the row is still at ``saga.version``."""

    async def announce_due(self, conn: AsyncConnection) -> None:
        """Tell other processes' workers a saga is due, at the commit of ``conn``'s transaction."""

    async def announce_due_now(self) -> None:
        """Tell other processes' workers a saga is due."""


def dialect_writes(engine: AsyncEngine) -> DialectWrites:
    """The writes for ``engine``'s database: PostgreSQL's own, or the portable ones."""
    if engine.dialect.name == "postgresql":
        return PostgresWrites(single_statements(engine))
    return SqliteWrites(engine)
