"""Queries behind the API's read endpoints: one saga, a page of sagas, a saga's history."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.errors import InvalidRequest
from orchestrator.store.engine import single_statements
from orchestrator.store.rows import StoredSaga, saga_from_row
from orchestrator.store.schema import events_table, sagas_table


@dataclass(frozen=True)
class Page:
    items: list[StoredSaga]
    next_cursor: str | None


def _aware(moment: datetime) -> datetime:
    """A moment without a zone is read as UTC (the store keeps UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def id_range(prefix: str) -> tuple[uuid.UUID, uuid.UUID]:
    """The lowest and highest saga ids that start with ``prefix`` (hex digits; dashes ignored).

    ``InvalidRequest`` naming ``id`` when it is not 1 to 32 hex digits.
    """
    digits = prefix.replace("-", "").lower()
    if not 1 <= len(digits) <= 32 or any(c not in "0123456789abcdef" for c in digits):
        message = "a prefix of a saga id is 1 to 32 hex digits"
        raise InvalidRequest(message, fields=[{"field": "id", "message": message}])
    return uuid.UUID(hex=digits.ljust(32, "0")), uuid.UUID(hex=digits.ljust(32, "f"))


def encode_cursor(created_at: datetime, saga_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{saga_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        created, _, saga_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(created), uuid.UUID(saga_id)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest(
            "cursor is not one this API returned",
            fields=[{"field": "cursor", "message": "invalid"}],
        ) from None


class SagaReader:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.single = single_statements(engine)

    async def page(
        self,
        *,
        status: str | None,
        definition: str | None,
        limit: int,
        cursor: str | None,
        step: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        id_prefix: str | None = None,
    ) -> Page:
        """Newest first; ``cursor`` continues after the last saga of the previous page.

        ``step`` keeps the sagas whose error names that step (where they failed);
        ``id_prefix`` (hex digits of the id, dashes ignored) is a range of the
        primary key, so it is answered from its index.
        """
        query = sa.select(sagas_table)
        if status:
            query = query.where(sagas_table.c.status == status)
        if definition:
            query = query.where(sagas_table.c.definition_name == definition)
        if step:
            query = query.where(sagas_table.c.state["error"]["step"].as_string() == step)
        at = sagas_table.c.created_at
        if created_after is not None:
            query = query.where(at > sa.literal(_aware(created_after), at.type))
        if created_before is not None:
            query = query.where(at < sa.literal(_aware(created_before), at.type))
        if id_prefix:
            low, high = id_range(id_prefix)
            id_type = sagas_table.c.id.type
            query = query.where(
                sagas_table.c.id.between(sa.literal(low, id_type), sa.literal(high, id_type))
            )
        if cursor:
            created, saga_id = decode_cursor(cursor)
            query = query.where(
                sa.tuple_(sagas_table.c.created_at, sagas_table.c.id)
                < sa.tuple_(
                    sa.literal(created, sagas_table.c.created_at.type),
                    sa.literal(saga_id, sagas_table.c.id.type),
                )
            )
        query = query.order_by(sagas_table.c.created_at.desc(), sagas_table.c.id.desc())
        async with self.single.connect() as conn:
            rows = (await conn.execute(query.limit(limit + 1))).all()
        items = [saga_from_row(r) for r in rows[:limit]]
        more = len(rows) > limit
        return Page(items, encode_cursor(items[-1].created_at, items[-1].id) if more else None)

    async def history(self, saga_id: uuid.UUID) -> list[dict[str, Any]]:
        query = (
            sa.select(events_table)
            .where(events_table.c.saga_id == saga_id)
            .order_by(events_table.c.id)
        )
        async with self.single.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            {
                "id": r.id,
                "at": r.at.isoformat(),
                "kind": r.kind,
                "step": r.step,
                "phase": r.phase,
                "attempt": r.attempt,
                "outcome": r.outcome,
                "detail": r.detail,
            }
            for r in rows
        ]

    async def ids_to_retry(
        self, *, status: str, definition: str | None, limit: int = 10_000
    ) -> list[uuid.UUID]:
        query = sa.select(sagas_table.c.id).where(sagas_table.c.status == status)
        if definition:
            query = query.where(sagas_table.c.definition_name == definition)
        async with self.single.connect() as conn:
            return list((await conn.execute(query.limit(limit))).scalars().all())

    async def gauges(self) -> tuple[dict[str, int], datetime | None]:
        """Sagas not yet finished, by status, and the earliest ``wake_at`` (for the backlog).

        Finished sagas are left out on purpose: counting them would scan the
        whole history, and throughput is what the counters are for.
        """
        open_statuses = ("running", "compensating", "failed")
        by_status = (
            sa.select(sagas_table.c.status, sa.func.count())
            .where(sagas_table.c.status.in_(open_statuses))
            .group_by(sagas_table.c.status)
        )
        earliest = sa.select(sa.func.min(sagas_table.c.wake_at)).where(
            sagas_table.c.wake_at.is_not(None)
        )
        async with self.single.connect() as conn:
            counts = {status: 0 for status in open_statuses}
            counts.update({status: n for status, n in (await conn.execute(by_status)).all()})
            first = (await conn.execute(earliest)).scalar()
        if first is not None and first.tzinfo is None:  # SQLite's min() skips the type
            first = first.replace(tzinfo=UTC)
        elif isinstance(first, str):
            first = datetime.fromisoformat(first).replace(tzinfo=UTC)
        return counts, first
