"""A saga's history: its rows, the JSON array PostgreSQL unpacks, the write appending them.

History is only ever appended together with the version-checked update of
the saga it belongs to: an event lands exactly when its transition does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from orchestrator import json_codec
from orchestrator.store.rows import HistoryEvent
from orchestrator.store.schema import events_table, sagas_table


def event_row(saga_id: uuid.UUID, event: HistoryEvent) -> dict[str, Any]:
    """``event`` as the parameters of one ``saga_events`` insert."""
    return {
        "saga_id": saga_id,
        "at": event.at,
        "kind": event.kind,
        "step": event.step,
        "phase": event.phase,
        "attempt": event.attempt,
        "outcome": event.outcome,
        "detail": event.detail or None,
    }


def _event_record(event: HistoryEvent) -> dict[str, Any]:
    # Absent keys unpack as NULL in jsonb_to_recordset: leaving them out keeps
    # the array (sent with every transition) short.
    row: dict[str, Any] = {"at": event.at.isoformat(), "kind": event.kind}
    for key in ("step", "phase", "attempt", "outcome"):
        value = getattr(event, key)
        if value is not None:
            row[key] = value
    if event.detail:
        row["detail"] = event.detail
    return row


def history_json(history: Iterable[HistoryEvent]) -> str:
    """The events as the JSON array the PostgreSQL writes unpack, numbered ``n`` in order."""
    return json_codec.dumps_str(
        [{**_event_record(event), "n": n} for n, event in enumerate(history)]
    )


async def insert_events(
    conn: AsyncConnection, saga_id: uuid.UUID, history: Iterable[HistoryEvent]
) -> None:
    """Append ``history`` to the saga's events (nothing is sent when it is empty)."""
    rows = [event_row(saga_id, e) for e in history]
    if rows:
        await conn.execute(sa.insert(events_table), rows)


async def write_transition(
    conn: AsyncConnection,
    saga_id: uuid.UUID,
    version: int,
    values: dict[str, Any],
    history: Sequence[HistoryEvent],
) -> bool:
    """Update the saga with ``values`` if it is still at ``version``; then append ``history``."""
    # Built only here: constructing it costs more than the hot path's whole call.
    stmt = (
        sa.update(sagas_table)
        .where(sagas_table.c.id == saga_id, sagas_table.c.version == version)
        .values(**values)
    )
    result = await conn.execute(stmt)
    if result.rowcount != 1:
        return False
    await insert_events(conn, saga_id, history)
    return True
