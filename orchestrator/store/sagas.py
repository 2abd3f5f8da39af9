"""Writing sagas: create (idempotent), claim due ones, record a transition, renew leases.

Every write after creation is ``UPDATE ... WHERE id = :id AND version = :v``
with the row count checked: a worker's write lands only if nobody wrote since
it read. Losing that race is normal and reported as ``None``, never raised.
Where the SQL differs by database, the writer hands over to the dialect chosen
when it is built (:mod:`orchestrator.store.dialect`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from orchestrator.errors import Conflict
from orchestrator.machine import SagaState, state_to_json
from orchestrator.store.dialect import dialect_writes
from orchestrator.store.engine import single_statements
from orchestrator.store.history import insert_events, write_transition
from orchestrator.store.leases import Leases
from orchestrator.store.rows import HistoryEvent, Lease, StoredSaga, saga_from_row
from orchestrator.store.schema import StartKeyRow
from orchestrator.store.schema import sagas_table as sagas


class SagaWriter:
    """The worker's and the API's writes to saga rows."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.single = single_statements(engine)
        self.dialect = dialect_writes(engine)
        self.leases = Leases(self.single, self.dialect)

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
        created, and :class:`~orchestrator.store.errors.NotNewest` is raised,
        when a newer version of its definition exists.
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
            await self.dialect.create(row, start_key, started, newest_only)
        except IntegrityError:
            if start_key is None:
                raise
            return await self._existing_for_key(*start_key), False
        return saga_id, True

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
        """Take up to ``limit`` due sagas with a lease for ``owner`` (:meth:`Leases.claim`)."""
        return await self.leases.claim(owner, now, lease_s, limit)

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
        if conn is None:
            written = await self.dialect.record(saga, values, now, history)
        else:
            written = await write_transition(conn, saga.id, saga.version, values, history)
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
        values = {
            "status": state.status.value,
            "state": state_to_json(state),
            "version": saga.version + 1,
            "updated_at": now,
            "wake_at": sa.case((sagas.c.lease_owner.is_(None), wake_at), else_=sagas.c.wake_at),
        }
        async with self.engine.begin() as conn:
            written = await write_transition(conn, saga.id, saga.version, values, history)
            if written and wake_at is not None:
                await self.dialect.announce_due(conn)  # delivered at commit
            return written

    async def announce_due(self) -> None:
        """Wake the workers of other processes: a saga nobody holds is due now."""
        await self.dialect.announce_due_now()

    async def renew(
        self, owner: str, ids: Sequence[uuid.UUID], expires_at: datetime
    ) -> set[uuid.UUID]:
        """Extend ``owner``'s leases on ``ids``; the ids still held (:meth:`Leases.renew`)."""
        return await self.leases.renew(owner, ids, expires_at)

    async def release_all(self, owner: str, now: datetime) -> int:
        """Give back every lease ``owner`` holds, due now (clean shutdown)."""
        return await self.leases.release_all(owner, now)

    async def load(self, saga_id: uuid.UUID) -> StoredSaga | None:
        """The saga as stored now, or ``None`` if there is none with that id."""
        async with self.single.begin() as conn:
            row = (await conn.execute(sa.select(sagas).where(sagas.c.id == saga_id))).first()
        return saga_from_row(row) if row is not None else None

    async def record_event(self, saga_id: uuid.UUID, event: HistoryEvent) -> None:
        """Append one event to the saga's history, without a transition."""
        async with self.engine.begin() as conn:
            await insert_events(conn, saga_id, [event])
