"""Leases: claiming due sagas, renewing what a worker holds, giving it all back.

A lease is the row's ``lease_owner`` with ``wake_at`` moved to its expiry:
nobody claims the saga before then, and a worker that vanished loses it
by simply not renewing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.store.dialect import DialectWrites
from orchestrator.store.rows import StoredSaga
from orchestrator.store.schema import sagas_table as sagas


class Leases:
    """Claims, renewals and releases on the autocommit engine ``single``."""

    def __init__(self, single: AsyncEngine, dialect: DialectWrites) -> None:
        self.single = single
        self.dialect = dialect

    async def claim(
        self, owner: str, now: datetime, lease_s: float, limit: int
    ) -> list[tuple[StoredSaga, str | None]]:
        """Take up to ``limit`` due sagas, oldest due first, with a lease for ``owner``.

        Returns each saga with the owner of the lease that ran out, if any (a
        takeover). On PostgreSQL the rows are picked ``FOR UPDATE SKIP LOCKED``,
        so workers never wait on each other; the version is bumped, which fences
        off a previous holder that is still alive (its writes will not match).
        """
        due = (
            sa.select(sagas.c.id, sagas.c.lease_owner)
            .where(sagas.c.wake_at <= now)
            .order_by(sagas.c.wake_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return await self.dialect.claim(due, owner, now + timedelta(seconds=lease_s))

    async def renew(
        self, owner: str, ids: Sequence[uuid.UUID], expires_at: datetime
    ) -> set[uuid.UUID]:
        """Extend ``owner``'s leases on ``ids``; returns the ids still held.

        No version bump: renewing changes nothing a reader decides on, and a
        takeover (which bumps the version) still fences the old holder out.
        """
        if not ids:
            return set()
        stmt = (
            sa.update(sagas)
            .where(sagas.c.id.in_(ids), sagas.c.lease_owner == owner)
            .values(lease_expires_at=expires_at, wake_at=expires_at)
            .returning(sagas.c.id)
        )
        async with self.single.begin() as conn:
            return set((await conn.execute(stmt)).scalars().all())

    async def release_all(self, owner: str, now: datetime) -> int:
        """Give back every lease ``owner`` holds, due now (clean shutdown)."""
        stmt = (
            sa.update(sagas)
            .where(sagas.c.lease_owner == owner)
            .values(
                lease_owner=None, lease_expires_at=None, wake_at=now, version=sagas.c.version + 1
            )
        )
        async with self.single.begin() as conn:
            result = await conn.execute(stmt)
        return int(result.rowcount)
