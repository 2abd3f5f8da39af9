"""Demo data of the orders service: none, orders only ever come from sagas."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from participants.kit import DemoData, seed_database
from participants.orders.schema import orders


async def seed(_conn: AsyncConnection) -> None:
    """An empty table is the seed; ``/_reset`` empties it."""


DEMO = DemoData(tables=[orders], seed=seed)


async def seed_demo_data(database_url: str) -> None:
    """Nothing to add; present so every example service looks alike."""
    await seed_database(database_url, DEMO)
