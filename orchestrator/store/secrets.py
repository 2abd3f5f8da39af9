"""The callback-token key: one random secret shared by every worker and API replica."""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.clock import utcnow
from orchestrator.store.schema import secrets_table

SECRET_NAME = "callback_token_key"


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
