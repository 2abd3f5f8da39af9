"""PostgreSQL's writes: each is ONE statement, run in autocommit.

The conditional UPDATE (or the INSERT) and its history rows travel together
as data-modifying CTEs, so a transition costs one round trip and one commit
instead of BEGIN, UPDATE, INSERT, COMMIT. The history arrives as one JSONB
array, unpacked by ``jsonb_to_recordset`` and inserted in its order (``n``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from orchestrator.store.errors import NotNewest
from orchestrator.store.history import history_json
from orchestrator.store.rows import HistoryEvent, StoredSaga, saga_from_row
from orchestrator.store.schema import sagas_table as sagas

#: The channel that tells listening workers a saga is due (orchestrator.store.wakeups).
DUE_CHANNEL = "saga_due"
_NOTIFY_DUE = sa.text(f"SELECT pg_notify('{DUE_CHANNEL}', '')")

_HISTORY_ROWS = """
    SELECT {source}, e.at, e.kind, e.step, e.phase, e.attempt, e.outcome, e.detail
    FROM {source_table}
    CROSS JOIN jsonb_to_recordset(CAST(:history AS jsonb)) AS e(
        at timestamptz, kind text, step text, phase text, attempt int, outcome text,
        detail jsonb, n bigint)
    ORDER BY e.n
"""

_RECORD = sa.text(
    """
WITH written AS (
    UPDATE sagas
    SET status = :status, state = :state, version = :version + 1, wake_at = :wake_at,
        lease_owner = :lease_owner, lease_expires_at = :lease_expires_at, updated_at = :now
    WHERE id = :id AND version = :version
    RETURNING id
), history AS (
    INSERT INTO saga_events (saga_id, at, kind, step, phase, attempt, outcome, detail)
"""
    + _HISTORY_ROWS.format(source="written.id", source_table="written")
    + """
)
SELECT count(*) FROM written
"""
).bindparams(
    sa.bindparam("id", type_=sagas.c.id.type),
    sa.bindparam("state", type_=sagas.c.state.type),
    sa.bindparam("wake_at", type_=sagas.c.wake_at.type),
    sa.bindparam("lease_expires_at", type_=sagas.c.lease_expires_at.type),
    sa.bindparam("now", type_=sagas.c.updated_at.type),
    sa.bindparam("history", type_=sa.String()),
)


def _create_statement(with_start_key: bool) -> sa.TextClause:
    # The saga is created only while its definition version is still the
    # newest: a start that resolved "latest" from this process's cache then
    # needs no read of the definitions table, and a newer version registered
    # by another process is caught here (nothing inserted, count 0).
    key = (
        """, start_key AS (
    INSERT INTO saga_start_keys (key, request_hash, saga_id, created_at)
    SELECT :key, :request_hash, id, :now FROM created
)"""
        if with_start_key
        else ""
    )
    return sa.text(
        """
WITH created AS (
    INSERT INTO sagas (id, definition_name, definition_version, status, input, state, version,
                       wake_at, lease_owner, lease_expires_at, created_at, updated_at, trace_id)
    SELECT :id, :definition_name, :definition_version, :status, :input, :state, 1,
           :wake_at, :lease_owner, :lease_expires_at, :now, :now, :trace_id
    WHERE NOT :newest_only OR NOT EXISTS (
        SELECT 1 FROM definitions
        WHERE name = :definition_name AND version > :definition_version)
    RETURNING id
)"""
        + key
        + """, history AS (
    INSERT INTO saga_events (saga_id, at, kind, step, phase, attempt, outcome, detail)
"""
        + _HISTORY_ROWS.format(source="created.id", source_table="created")
        + """
)
SELECT count(*) FROM created
"""
    ).bindparams(
        sa.bindparam("id", type_=sagas.c.id.type),
        sa.bindparam("input", type_=sagas.c.input.type),
        sa.bindparam("state", type_=sagas.c.state.type),
        sa.bindparam("wake_at", type_=sagas.c.wake_at.type),
        sa.bindparam("lease_expires_at", type_=sagas.c.lease_expires_at.type),
        sa.bindparam("now", type_=sagas.c.created_at.type),
        sa.bindparam("definition_name", type_=sagas.c.definition_name.type),
        sa.bindparam("definition_version", type_=sagas.c.definition_version.type),
        sa.bindparam("newest_only", type_=sa.Boolean()),
        sa.bindparam("history", type_=sa.String()),
    )


_CREATE = _create_statement(with_start_key=False)
_CREATE_WITH_KEY = _create_statement(with_start_key=True)


class PostgresWrites:
    """The writes whose SQL is PostgreSQL's own, on the autocommit engine ``single``."""

    def __init__(self, single: AsyncEngine) -> None:
        self.single = single

    async def create(
        self,
        row: dict[str, Any],
        start_key: tuple[str, str] | None,
        started: HistoryEvent,
        newest_only: bool,
    ) -> None:
        """Insert the saga row, its start key and first event; :class:`NotNewest` if outdated."""
        params = {
            **row,
            "now": row["created_at"],
            "newest_only": newest_only,
            "history": history_json([started]),
        }
        del params["created_at"], params["updated_at"], params["version"]
        if start_key is None:
            statement = _CREATE
        else:
            statement = _CREATE_WITH_KEY
            params["key"], params["request_hash"] = start_key
        async with self.single.begin() as conn:
            created = (await conn.execute(statement, params)).scalar_one()
        if not created:
            raise NotNewest(row["definition_name"])

    async def claim(
        self, due: sa.Select[Any], owner: str, expires: datetime
    ) -> list[tuple[StoredSaga, str | None]]:
        """Lease the rows ``due`` picks; each with the owner whose lease ran out, if any."""
        # One statement: the locked pick and the lease in a single round trip;
        # ``picked.lease_owner`` is the owner before the update (a takeover).
        picked = due.cte("due")
        stmt = (
            sa.update(sagas)
            .where(sagas.c.id == picked.c.id)
            .values(
                lease_owner=owner,
                lease_expires_at=expires,
                wake_at=expires,
                version=sagas.c.version + 1,
            )
            .returning(*sagas.c, picked.c.lease_owner.label("previous_owner"))
        )
        async with self.single.begin() as conn:
            rows = (await conn.execute(stmt)).all()
        return [(saga_from_row(r), r.previous_owner) for r in rows]

    async def record(
        self,
        saga: StoredSaga,
        values: dict[str, Any],
        now: datetime,
        history: Sequence[HistoryEvent],
    ) -> bool:
        """Write ``values`` and ``history`` if the row is still at ``saga.version``."""
        params = {
            **values,
            "id": saga.id,
            "version": saga.version,
            "now": now,
            "history": history_json(history),
        }
        del params["updated_at"]
        async with self.single.begin() as conn:
            written: bool = (await conn.execute(_RECORD, params)).scalar_one() == 1
        return written

    async def announce_due(self, conn: AsyncConnection) -> None:
        """``NOTIFY`` the workers that a saga is due; inside a transaction, at its commit."""
        await conn.execute(_NOTIFY_DUE)

    async def announce_due_now(self) -> None:
        """``NOTIFY`` the workers that a saga is due, on a connection of its own."""
        async with self.single.connect() as conn:
            await self.announce_due(conn)
