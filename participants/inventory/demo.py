"""Demo stock of the inventory service, seeded idempotently."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from participants.inventory.schema import items, reservations
from participants.kit import DemoData, insert_missing, seed_database, utcnow

DEMO_ITEMS = {"A1": ("Widget", 100), "B2": ("Gadget", 20), "C3": ("Rare gizmo", 3)}


async def seed(conn: AsyncConnection) -> None:
    """Stock the demo items that do not exist yet."""
    now = utcnow()
    rows = [
        {
            "sku": sku,
            "name": name,
            "available": stock,
            "reserved": 0,
            "committed": 0,
            "version": 1,
            "updated_at": now,
        }
        for sku, (name, stock) in DEMO_ITEMS.items()
    ]
    await insert_missing(conn, items, rows)


DEMO = DemoData(tables=[items, reservations], seed=seed)


async def seed_demo_data(database_url: str) -> None:
    """Seed the demo stock into the (migrated) inventory database; idempotent."""
    await seed_database(database_url, DEMO)
