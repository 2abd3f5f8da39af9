"""Every statement the kit runs against ``participant_effects``.

Claiming a key is an ``INSERT ... ON CONFLICT DO NOTHING``: the row is the lock.
On PostgreSQL a second transaction inserting the same key blocks on the first's
uncommitted row and, once that commits, finds the conflict and reads the
stored answer; if the first rolls back, the second's insert simply succeeds.
On SQLite writers are serialised (see :mod:`participants.kit.database`), so the
second transaction only starts after the first has finished.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from participants.kit.keys import IdempotencyKey
from participants.kit.schema import EffectStatus, effects, utcnow


@dataclass(frozen=True)
class StoredEffect:
    """One row of ``participant_effects``."""

    key: str
    saga_id: str
    step: str
    phase: str
    endpoint: str
    status: EffectStatus
    request_hash: str | None
    request: Any
    status_code: int | None
    response: Any
    applied_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: sa.RowMapping) -> StoredEffect:
        """Build from a selected row."""
        values = dict(row)
        values["status"] = EffectStatus(values["status"])
        return cls(**values)


async def claim(
    conn: AsyncConnection,
    key: IdempotencyKey,
    endpoint: str,
    *,
    status: EffectStatus = EffectStatus.PENDING,
    request_hash: str | None = None,
    request: Any = None,
) -> bool:
    """Insert the row for ``key``; False when the key is already taken (nothing changed)."""
    now = utcnow()
    values = {
        "key": key.value,
        "saga_id": key.saga_id,
        "step": key.step,
        "phase": str(key.phase),
        "endpoint": endpoint,
        "status": str(status),
        "request_hash": request_hash,
        "request": request,
        "applied_at": now,
        "updated_at": now,
    }
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert(effects).values(values).on_conflict_do_nothing(index_elements=["key"])
    result = await conn.execute(statement.returning(effects.c.key))
    return result.first() is not None


async def load(conn: AsyncConnection, key: str, *, lock: bool = False) -> StoredEffect:
    """The row for ``key``, which must exist; ``lock`` holds it until the transaction ends."""
    query = sa.select(effects).where(effects.c.key == key)
    if lock:
        query = query.with_for_update()
    row = (await conn.execute(query)).mappings().one()
    return StoredEffect.from_row(row)


async def settle(
    conn: AsyncConnection,
    key: str,
    status: EffectStatus,
    status_code: int,
    response: Any,
) -> None:
    """Record the answer given for ``key`` and the effect's fate."""
    now = utcnow()
    await conn.execute(
        sa.update(effects)
        .where(effects.c.key == key)
        .values(
            status=str(status),
            status_code=status_code,
            response=response,
            applied_at=now,
            updated_at=now,
        )
    )


async def mark_compensated(conn: AsyncConnection, key: str) -> None:
    """Record that the applied action behind ``key`` has been undone."""
    await conn.execute(
        sa.update(effects)
        .where(effects.c.key == key, effects.c.status == str(EffectStatus.APPLIED))
        .values(status=str(EffectStatus.COMPENSATED), updated_at=utcnow())
    )


async def ledger(conn: AsyncConnection, saga_id: str | None = None) -> list[StoredEffect]:
    """Every settled key (optionally of one saga), oldest first."""
    query = sa.select(effects).where(effects.c.status != str(EffectStatus.PENDING))
    if saga_id is not None:
        query = query.where(effects.c.saga_id == saga_id)
    rows = (await conn.execute(query.order_by(effects.c.applied_at, effects.c.key))).mappings()
    return [StoredEffect.from_row(row) for row in rows]


async def forget_all(conn: AsyncConnection) -> None:
    """Delete every key (demo reset only)."""
    await conn.execute(sa.delete(effects))
