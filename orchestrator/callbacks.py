"""Callback tokens: who may complete a callback step.

A token is ``HMAC(secret, "<saga>:<step>:<attempt>")``: it can be checked by any
API replica at any time, even when the completion arrives before the worker
recorded the participant's 202, and it names the one attempt it completes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.clock import utcnow
from orchestrator.store.schema import secrets_table

SECRET_NAME = "callback_token_key"


def callback_token(secret: str, saga_id: uuid.UUID | str, step: str, attempt: int) -> str:
    message = f"{saga_id}:{step}:{attempt}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def attempt_of(
    secret: str, token: str, saga_id: uuid.UUID | str, step: str, attempts: int
) -> int | None:
    """The attempt ``token`` was issued for (newest first), or None if it is no token of ours."""
    for attempt in range(attempts, 0, -1):
        expected = callback_token(secret, saga_id, step, attempt)
        if hmac.compare_digest(token.encode(), expected.encode()):  # bytes: any token is safe
            return attempt
    return None


async def shared_secret(engine: AsyncEngine) -> str:
    """The key every worker and API replica uses, created once in the database."""
    query = sa.select(secrets_table.c.value).where(secrets_table.c.name == SECRET_NAME)
    async with engine.connect() as conn:
        found = (await conn.execute(query)).scalar()
    if found is not None:
        return str(found)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.insert(secrets_table).values(
                    name=SECRET_NAME, value=secrets.token_hex(32), created_at=utcnow()
                )
            )
    except IntegrityError:
        pass  # another process created it first
    async with engine.connect() as conn:
        return str((await conn.execute(query)).scalar_one())
