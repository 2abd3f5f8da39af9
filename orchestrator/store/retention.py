"""Retention: delete sagas that finished long ago, with their history, in small batches.

Only sagas at rest are candidates: ``wake_at IS NULL`` (no worker will look at
them again) and a final status, ``completed`` or ``compensated``. Parked
(``failed``) sagas wait for an operator and are kept unless asked for
explicitly. Each batch is one short transaction; on PostgreSQL its rows are
picked ``FOR UPDATE SKIP LOCKED``, so a prune never waits on a row that a
worker or an operator's request holds (that saga is left for the next run),
and no worker ever waits long on a prune. Start keys go with their saga
(``ON DELETE CASCADE``); events are deleted explicitly, to be counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.machine import FINAL_STATUSES, SagaStatus
from orchestrator.store.schema import events_table, sagas_table

sagas = sagas_table
events = events_table

DEFAULT_BATCH_SIZE = 1000
#: Bounds the ids bound into one ``IN (...)`` (SQLite caps a statement's parameters).
MAX_BATCH_SIZE = 10_000


@dataclass(frozen=True)
class Pruned:
    """What a prune deleted (or, for a dry run, would delete)."""

    sagas: int
    events: int
    batches: int = 0


def prunable_statuses(include_failed: bool) -> tuple[str, ...]:
    """The statuses a prune deletes: the final ones, and parked ones if asked."""
    statuses = {s.value for s in FINAL_STATUSES}
    if include_failed:
        statuses.add(SagaStatus.FAILED.value)
    return tuple(sorted(statuses))


def _candidates(cutoff: datetime, statuses: Sequence[str]) -> sa.Select[tuple[object]]:
    # The three conditions match ix_sagas_resting (status, updated_at) WHERE wake_at IS NULL.
    return sa.select(sagas.c.id).where(
        sagas.c.wake_at.is_(None),
        sagas.c.status.in_(statuses),
        sagas.c.updated_at < cutoff,
    )


async def count_prunable(
    engine: AsyncEngine, cutoff: datetime, *, include_failed: bool = False
) -> Pruned:
    """How many sagas (and their events) a prune with the same arguments would delete now."""
    ids = _candidates(cutoff, prunable_statuses(include_failed)).subquery()
    saga_count = sa.select(sa.func.count()).select_from(ids)
    event_count = sa.select(sa.func.count()).where(events.c.saga_id.in_(sa.select(ids.c.id)))
    async with engine.connect() as conn:
        found_sagas = (await conn.execute(saga_count)).scalar_one()
        found_events = (await conn.execute(event_count)).scalar_one()
    return Pruned(sagas=int(found_sagas), events=int(found_events))


async def prune_batch(
    engine: AsyncEngine, cutoff: datetime, *, batch_size: int, include_failed: bool = False
) -> Pruned:
    """Delete at most ``batch_size`` resting sagas last updated before ``cutoff``, in one commit."""
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}")
    pick = (
        _candidates(cutoff, prunable_statuses(include_failed))
        .limit(batch_size)
        .with_for_update(skip_locked=True)
    )
    async with engine.begin() as conn:
        ids = list((await conn.execute(pick)).scalars())
        if not ids:
            return Pruned(sagas=0, events=0, batches=0)
        gone_events = await conn.execute(sa.delete(events).where(events.c.saga_id.in_(ids)))
        gone_sagas = await conn.execute(sa.delete(sagas).where(sagas.c.id.in_(ids)))
    return Pruned(sagas=int(gone_sagas.rowcount), events=int(gone_events.rowcount), batches=1)


async def prune(
    engine: AsyncEngine,
    cutoff: datetime,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    include_failed: bool = False,
) -> Pruned:
    """Delete every resting saga last updated before ``cutoff``, ``batch_size`` per commit.

    Stops at the first batch that is not full: what is left then is either
    nothing or rows locked by someone else, which the next prune will find.
    """
    total = Pruned(sagas=0, events=0, batches=0)
    while True:
        done = await prune_batch(
            engine, cutoff, batch_size=batch_size, include_failed=include_failed
        )
        total = Pruned(
            sagas=total.sagas + done.sagas,
            events=total.events + done.events,
            batches=total.batches + done.batches,
        )
        if done.sagas < batch_size:
            return total
