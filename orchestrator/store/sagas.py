"""Writing sagas: create (idempotent), claim due ones, record a transition, renew leases.

Every write after creation is ``UPDATE ... WHERE id = :id AND version = :v``
with the row count checked: a worker's write lands only if nobody wrote since
it read. Losing that race is normal and reported as ``None``, never raised.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from orchestrator import json_codec
from orchestrator.errors import Conflict
from orchestrator.machine import SagaState, state_from_json, state_to_json
from orchestrator.store.engine import single_statements
from orchestrator.store.schema import (
    StartKeyRow,
    definitions_table,
    events_table,
    sagas_table,
    start_keys_table,
)

sagas = sagas_table
events = events_table


@dataclass(frozen=True)
class StoredSaga:
    """A saga as read from its row."""

    id: uuid.UUID
    definition_name: str
    definition_version: int
    input: Any
    state: SagaState
    version: int
    wake_at: datetime | None
    lease_owner: str | None
    created_at: datetime
    updated_at: datetime
    trace_id: str | None = None


@dataclass(frozen=True)
class HistoryEvent:
    """One row of a saga's history, to be written with a transition."""

    kind: str
    at: datetime
    step: str | None = None
    phase: str | None = None
    attempt: int | None = None
    outcome: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The event as one element of the JSON array the PostgreSQL writes unpack."""
        row: dict[str, Any] = {"at": self.at.isoformat(), "kind": self.kind}
        for key in ("step", "phase", "attempt", "outcome"):
            value = getattr(self, key)
            if value is not None:
                row[key] = value
        if self.detail:
            row["detail"] = self.detail
        return row

    def row(self, saga_id: uuid.UUID) -> dict[str, Any]:
        return {
            "saga_id": saga_id,
            "at": self.at,
            "kind": self.kind,
            "step": self.step,
            "phase": self.phase,
            "attempt": self.attempt,
            "outcome": self.outcome,
            "detail": self.detail or None,
        }


@dataclass(frozen=True)
class Lease:
    owner: str
    expires_at: datetime


def saga_from_row(row: sa.Row[Any]) -> StoredSaga:
    m = row._mapping
    return StoredSaga(
        id=m["id"],
        definition_name=m["definition_name"],
        definition_version=m["definition_version"],
        input=m["input"],
        state=state_from_json(m["state"]),
        version=m["version"],
        wake_at=m["wake_at"],
        lease_owner=m["lease_owner"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        trace_id=m["trace_id"],
    )


async def _insert_events(
    conn: AsyncConnection, saga_id: uuid.UUID, history: Iterable[HistoryEvent]
) -> None:
    rows = [e.row(saga_id) for e in history]
    if rows:
        await conn.execute(sa.insert(events), rows)


# On PostgreSQL each write below is ONE statement run in autocommit: the
# conditional UPDATE (or the INSERT) and its history rows travel together as
# data-modifying CTEs, so a transition costs one round trip and one commit
# instead of BEGIN, UPDATE, INSERT, COMMIT. The history arrives as one JSONB
# array, unpacked by ``jsonb_to_recordset`` and inserted in its order (``n``).
_HISTORY_ROWS = """
    SELECT {source}, e.at, e.kind, e.step, e.phase, e.attempt, e.outcome, e.detail
    FROM {source_table}
    CROSS JOIN jsonb_to_recordset(CAST(:history AS jsonb)) AS e(
        at timestamptz, kind text, step text, phase text, attempt int, outcome text,
        detail jsonb, n bigint)
    ORDER BY e.n
"""

_PG_RECORD = sa.text(
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


def _pg_create(with_start_key: bool) -> sa.TextClause:
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


_PG_CREATE = _pg_create(with_start_key=False)
_PG_CREATE_WITH_KEY = _pg_create(with_start_key=True)


#: The channel that tells listening workers a saga is due (orchestrator.worker.wakeups).
DUE_CHANNEL = "saga_due"
_NOTIFY_DUE = sa.text(f"SELECT pg_notify('{DUE_CHANNEL}', '')")


async def announce_due(conn: AsyncConnection) -> None:
    """``NOTIFY`` the workers that a saga is due (PostgreSQL; a no-op elsewhere).

    Inside a transaction the notification is delivered when it commits.
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(_NOTIFY_DUE)


def _history_json(history: Iterable[HistoryEvent]) -> str:
    return json_codec.dumps_str([{**event.record(), "n": n} for n, event in enumerate(history)])


class NotNewest(Exception):
    """A saga was to start on its definition's newest version, and a newer one exists."""


async def _newer_definition_exists(conn: AsyncConnection, name: str, version: int) -> bool:
    newer = sa.select(definitions_table.c.version).where(
        definitions_table.c.name == name, definitions_table.c.version > version
    )
    return (await conn.execute(newer.limit(1))).first() is not None


class SagaWriter:
    """The worker's and the API's writes to saga rows."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self.single = single_statements(engine)

    async def create(
        self,
        *,
        saga_id: uuid.UUID,
        definition: tuple[str, int],
        saga_input: Any,
        state: SagaState,
        wake_at: datetime | None,
        now: datetime,
        start_key: tuple[str, str] | None = None,
        lease: Lease | None = None,
        trace_id: str | None = None,
        newest_only: bool = False,
    ) -> tuple[uuid.UUID, bool]:
        """Insert a new saga; returns ``(id, created)``.

        With ``start_key = (key, request_hash)`` a repeated key returns the saga
        it first created (``created=False``), and the same key with another
        request raises :class:`Conflict`. With ``newest_only`` the saga is not
        created, and :class:`NotNewest` is raised, when a newer version of its
        definition exists.
        """
        row = {
            "id": saga_id,
            "definition_name": definition[0],
            "definition_version": definition[1],
            "status": state.status.value,
            "input": saga_input,
            "state": state_to_json(state),
            "version": 1,
            "wake_at": lease.expires_at if lease else wake_at,
            "lease_owner": lease.owner if lease else None,
            "lease_expires_at": lease.expires_at if lease else None,
            "created_at": now,
            "updated_at": now,
            "trace_id": trace_id,
        }
        started = HistoryEvent("started", now, detail={"status": "running"})
        try:
            if self.postgres:
                await self._create_postgres(row, start_key, started, newest_only)
                return saga_id, True
            async with self.engine.begin() as conn:
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
                                "saga_id": saga_id,
                                "created_at": now,
                            }
                        ],
                    )
                await _insert_events(conn, saga_id, [started])
        except IntegrityError:
            if start_key is None:
                raise
            return await self._existing_for_key(*start_key), False
        return saga_id, True

    async def _create_postgres(
        self,
        row: dict[str, Any],
        start_key: tuple[str, str] | None,
        started: HistoryEvent,
        newest_only: bool,
    ) -> None:
        params = {
            **row,
            "now": row["created_at"],
            "newest_only": newest_only,
            "history": _history_json([started]),
        }
        del params["created_at"], params["updated_at"], params["version"]
        if start_key is None:
            statement = _PG_CREATE
        else:
            statement = _PG_CREATE_WITH_KEY
            params["key"], params["request_hash"] = start_key
        async with self.single.begin() as conn:
            created = (await conn.execute(statement, params)).scalar_one()
        if not created:
            raise NotNewest(row["definition_name"])

    async def _existing_for_key(self, key: str, request_hash: str) -> uuid.UUID:
        async with self.engine.connect() as conn:
            found = (
                await conn.execute(
                    sa.select(StartKeyRow.saga_id, StartKeyRow.request_hash).where(
                        StartKeyRow.key == key
                    )
                )
            ).first()
        if found is None:  # the insert failed for another reason
            raise Conflict("the saga could not be created; try again")
        if found.request_hash != request_hash:
            raise Conflict("this Idempotency-Key was used with a different request", key=key)
        saga_id: uuid.UUID = found.saga_id
        return saga_id

    async def claim(
        self, owner: str, now: datetime, lease_s: float, limit: int
    ) -> list[tuple[StoredSaga, str | None]]:
        """Take up to ``limit`` due sagas, oldest due first, with a lease for ``owner``.

        Returns each saga with the owner of the lease that ran out, if any (a
        takeover). On PostgreSQL the rows are picked ``FOR UPDATE SKIP LOCKED``,
        so workers never wait on each other; the version is bumped, which fences
        off a previous holder that is still alive (its writes will not match).
        """
        expires = now + timedelta(seconds=lease_s)
        due = (
            sa.select(sagas.c.id, sagas.c.lease_owner)
            .where(sagas.c.wake_at <= now)
            .order_by(sagas.c.wake_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if self.postgres:
            return await self._claim_postgres(due.cte("due"), owner, expires)
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

    async def _claim_postgres(
        self, due: sa.CTE, owner: str, expires: datetime
    ) -> list[tuple[StoredSaga, str | None]]:
        # One statement: the locked pick and the lease in a single round trip;
        # ``due.lease_owner`` is the owner before the update (a takeover).
        stmt = (
            sa.update(sagas)
            .where(sagas.c.id == due.c.id)
            .values(
                lease_owner=owner,
                lease_expires_at=expires,
                wake_at=expires,
                version=sagas.c.version + 1,
            )
            .returning(*sagas.c, due.c.lease_owner.label("previous_owner"))
        )
        async with self.single.begin() as conn:
            rows = (await conn.execute(stmt)).all()
        return [(saga_from_row(r), r.previous_owner) for r in rows]

    async def record(
        self,
        saga: StoredSaga,
        state: SagaState,
        now: datetime,
        *,
        wake_at: datetime | None,
        lease: Lease | None,
        history: Sequence[HistoryEvent] = (),
        conn: AsyncConnection | None = None,
    ) -> StoredSaga | None:
        """Write a transition if the row is still at ``saga.version``; else ``None``.

        ``lease`` keeps the saga (its ``wake_at`` becomes the lease expiry);
        ``None`` releases it, due again at ``wake_at``.
        """
        new_wake = lease.expires_at if lease else wake_at
        owner = lease.owner if lease else None
        values: dict[str, Any] = {
            "status": state.status.value,
            "state": state_to_json(state),
            "version": saga.version + 1,
            "wake_at": lease.expires_at if lease else wake_at,
            "lease_owner": lease.owner if lease else None,
            "lease_expires_at": lease.expires_at if lease else None,
            "updated_at": now,
        }
        if conn is None and self.postgres:
            params = {
                **values,
                "id": saga.id,
                "version": saga.version,
                "now": now,
                "history": _history_json(history),
            }
            del params["updated_at"]
            async with self.single.begin() as own:
                written = (await own.execute(_PG_RECORD, params)).scalar_one() == 1
        else:
            # Built only here: constructing it costs more than the hot path's whole call.
            stmt = (
                sa.update(sagas)
                .where(sagas.c.id == saga.id, sagas.c.version == saga.version)
                .values(**values)
            )
            if conn is None:
                async with self.engine.begin() as own:
                    written = await self._write(own, stmt, saga.id, history)
            else:
                written = await self._write(conn, stmt, saga.id, history)
        if not written:
            return None
        return StoredSaga(
            id=saga.id,
            definition_name=saga.definition_name,
            definition_version=saga.definition_version,
            input=saga.input,
            state=state,
            version=saga.version + 1,
            wake_at=new_wake,
            lease_owner=owner,
            created_at=saga.created_at,
            updated_at=now,
            trace_id=saga.trace_id,
        )

    @staticmethod
    async def _write(
        conn: AsyncConnection, stmt: sa.Update, saga_id: uuid.UUID, history: Sequence[HistoryEvent]
    ) -> bool:
        result = await conn.execute(stmt)
        if result.rowcount != 1:
            return False
        await _insert_events(conn, saga_id, history)
        return True

    async def record_request(
        self,
        saga: StoredSaga,
        state: SagaState,
        now: datetime,
        *,
        wake_at: datetime | None,
        history: Sequence[HistoryEvent] = (),
    ) -> bool:
        """Write a transition asked for from outside (cancel, retry, ...), leaving any lease alone.

        A worker holding the saga keeps it; its own next write will then lose the
        version race, re-read, and fold its outcomes into this state.
        """
        stmt = (
            sa.update(sagas)
            .where(sagas.c.id == saga.id, sagas.c.version == saga.version)
            .values(
                status=state.status.value,
                state=state_to_json(state),
                version=saga.version + 1,
                updated_at=now,
                wake_at=sa.case((sagas.c.lease_owner.is_(None), wake_at), else_=sagas.c.wake_at),
            )
        )
        async with self.engine.begin() as conn:
            written = await self._write(conn, stmt, saga.id, history)
            if written and wake_at is not None:
                await announce_due(conn)  # delivered at commit
            return written

    async def announce_due(self) -> None:
        """Wake the workers of other processes: a saga nobody holds is due now."""
        if self.postgres:
            async with self.single.connect() as conn:
                await announce_due(conn)

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

    async def load(self, saga_id: uuid.UUID) -> StoredSaga | None:
        async with self.single.begin() as conn:
            row = (await conn.execute(sa.select(sagas).where(sagas.c.id == saga_id))).first()
        return saga_from_row(row) if row is not None else None

    async def record_event(self, saga_id: uuid.UUID, event: HistoryEvent) -> None:
        async with self.engine.begin() as conn:
            await _insert_events(conn, saga_id, [event])
