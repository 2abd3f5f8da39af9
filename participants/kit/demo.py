"""Demo data: seeding a service idempotently and restoring the seed on demand.

A service describes its demo data as a :class:`DemoData`: the business tables
(in creation order) and a ``seed`` coroutine that inserts the rows with
:func:`insert_missing`, so seeding twice changes nothing. ``POST /_reset``
(only when faults are enabled, as it wipes the database) empties those
tables and the kit's keys and seeds again — what a test campaign needs
between runs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from participants.kit import completions as owed
from participants.kit import store
from participants.kit.database import Database, create_engine
from participants.kit.settings import ParticipantSettings, normalise_database_url

logger = logging.getLogger(__name__)

Seeder = Callable[[AsyncConnection], Awaitable[None]]


@dataclass(frozen=True)
class DemoData:
    """A service's business tables (parents first) and how to seed them."""

    tables: Sequence[sa.Table]
    seed: Seeder


async def insert_missing(
    conn: AsyncConnection, table: sa.Table, rows: Sequence[Mapping[str, Any]]
) -> int:
    """Insert the ``rows`` whose primary key is not taken yet; returns how many were new."""
    if not rows:
        return 0
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    keys = [column.name for column in table.primary_key.columns]
    statement = insert(table).on_conflict_do_nothing(index_elements=keys)
    inserted = 0
    for row in rows:
        # One statement per row: executemany does not report per-row conflicts everywhere.
        result = await conn.execute(statement.values(dict(row)))
        inserted += result.rowcount
    return inserted


async def seed_database(database_url: str, demo: DemoData) -> None:
    """Seed the (already migrated) database at ``database_url``; idempotent."""
    url = normalise_database_url(database_url)
    db = Database(create_engine(url, ParticipantSettings(), pooled=False))
    try:
        async with db.transaction() as conn:
            await demo.seed(conn)
    finally:
        await db.dispose()


async def reset(db: Database, demo: DemoData, *, completions: bool = False) -> None:
    """Empty the business tables and the kit's keys (and owed completions, when the
    service has them), then seed again, in one transaction."""
    async with db.transaction() as conn:
        await store.forget_all(conn)
        if completions:
            await owed.forget_all(conn)
        for table in reversed(demo.tables):
            await conn.execute(sa.delete(table))
        await demo.seed(conn)


def reset_router(db: Database, demo: DemoData, *, completions: bool = False) -> APIRouter:
    """``POST /_reset``: restore the seed (mounted only when faults are enabled)."""
    router = APIRouter(tags=["faults"])

    @router.post("/_reset")
    async def reset_demo_data() -> dict[str, bool]:
        await reset(db, demo, completions=completions)
        logger.warning("demo data reset: every business row and idempotency key was replaced")
        return {"reset": True}

    return router
