"""Every statement the kit runs against ``participant_completions``.

A row is written in the transaction that applies the action and answers it
``202``, so the effect and the debt commit together. The orchestrator hands
out one token per attempt and accepts only the current attempt's completion:
when a retry of the same key brings a newer token, :func:`refresh` re-aims the
row at it. Every outcome of a delivery is recorded only if the row still holds
the token that was sent (:func:`record`), so a refresh is never overwritten by
the answer to an older token.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from participants.kit.keys import IdempotencyKey
from participants.kit.schema import CompletionStatus, completions, utcnow


@dataclass(frozen=True)
class CallbackTarget:
    """Where and with which token to complete one attempt (the call's headers)."""

    url: str
    token: str
    attempt: int | None


@dataclass(frozen=True)
class Completion:
    """One row of ``participant_completions``."""

    key: str
    saga_id: str
    step: str
    callback_url: str
    token: str
    attempt: int | None
    body: Any
    status: CompletionStatus
    tries: int
    next_at: datetime
    http_status: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: sa.RowMapping) -> Completion:
        """Build from a selected row."""
        values = dict(row)
        values["status"] = CompletionStatus(values["status"])
        return cls(**values)


async def owe(
    conn: AsyncConnection, key: IdempotencyKey, target: CallbackTarget, body: Any
) -> None:
    """Record that ``body`` is to be sent to ``target`` for the action behind ``key``.

    Called once per key: the idempotency row claimed in the same transaction
    guarantees no second call of the same key gets here.
    """
    now = utcnow()
    await conn.execute(
        completions.insert().values(
            key=key.value,
            saga_id=key.saga_id,
            step=key.step,
            callback_url=target.url,
            token=target.token,
            attempt=target.attempt,
            body=body,
            status=str(CompletionStatus.PENDING),
            tries=0,
            next_at=now,
            created_at=now,
            updated_at=now,
        )
    )


async def refresh(conn: AsyncConnection, key: str, target: CallbackTarget) -> bool:
    """Aim the completion of ``key`` at a newer attempt's token and send it again soon.

    Nothing changes for the same token or an older attempt (a late duplicate).
    Returns whether the row changed.
    """
    newer = completions.c.token != target.token
    if target.attempt is not None:
        newer &= sa.or_(completions.c.attempt.is_(None), completions.c.attempt < target.attempt)
    now = utcnow()
    result = await conn.execute(
        sa.update(completions)
        .where(completions.c.key == key, newer)
        .values(
            callback_url=target.url,
            token=target.token,
            attempt=target.attempt,
            status=str(CompletionStatus.PENDING),
            tries=0,
            next_at=now,
            http_status=None,
            last_error=None,
            updated_at=now,
        )
    )
    return result.rowcount > 0


async def pending(conn: AsyncConnection, limit: int) -> list[Completion]:
    """The pending completions, soonest first."""
    query = (
        sa.select(completions)
        .where(completions.c.status == str(CompletionStatus.PENDING))
        .order_by(completions.c.next_at, completions.c.key)
        .limit(limit)
    )
    return [Completion.from_row(row) for row in (await conn.execute(query)).mappings()]


async def record(
    conn: AsyncConnection,
    sent: Completion,
    status: CompletionStatus,
    *,
    http_status: int | None,
    error: str | None,
    next_at: datetime | None = None,
) -> None:
    """Record the outcome of sending ``sent``, unless the row was re-aimed meanwhile."""
    await conn.execute(
        sa.update(completions)
        .where(completions.c.key == sent.key, completions.c.token == sent.token)
        .values(
            status=str(status),
            tries=completions.c.tries + 1,
            next_at=next_at or utcnow(),
            http_status=http_status,
            last_error=error[:500] if error else None,
            updated_at=utcnow(),
        )
    )


async def result_of(conn: AsyncConnection, key: str) -> Any:
    """The result the completion of ``key`` reports (None if nothing was owed)."""
    query = sa.select(completions.c.body).where(completions.c.key == key)
    body = (await conn.execute(query)).scalar()
    return body.get("result") if isinstance(body, dict) else None


async def listing(conn: AsyncConnection, saga_id: str | None = None) -> list[Completion]:
    """Every completion (optionally of one saga), oldest first."""
    query = sa.select(completions)
    if saga_id is not None:
        query = query.where(completions.c.saga_id == saga_id)
    rows = (
        await conn.execute(query.order_by(completions.c.created_at, completions.c.key))
    ).mappings()
    return [Completion.from_row(row) for row in rows]


async def forget_all(conn: AsyncConnection) -> None:
    """Delete every completion (demo reset only)."""
    await conn.execute(sa.delete(completions))
