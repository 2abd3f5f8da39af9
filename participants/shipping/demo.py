"""Demo data of the shipping service: none, shipments only ever come from sagas."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from participants.kit import DemoData, seed_database
from participants.shipping.schema import shipments


async def seed(_conn: AsyncConnection) -> None:
    """An empty table is the seed; ``/_reset`` empties it."""


DEMO = DemoData(tables=[shipments], seed=seed)


async def seed_demo_data(database_url: str) -> None:
    """Nothing to add; present so every example service looks alike."""
    await seed_database(database_url, DEMO)
