"""Demo accounts of the payments service (alice, bob, carol), seeded idempotently."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from participants.kit import DemoData, insert_missing, seed_database, utcnow
from participants.payments.schema import accounts, charges, movements

# Balances in minor units.
DEMO_ACCOUNTS = {"alice": ("Alice", 1_000), "bob": ("Bob", 500), "carol": ("Carol", 100)}


async def seed(conn: AsyncConnection) -> None:
    """Open the demo accounts that do not exist yet, each with an opening movement."""
    now = utcnow()
    for account_id, (owner, balance) in DEMO_ACCOUNTS.items():
        row = {
            "id": account_id,
            "owner": owner,
            "balance": balance,
            "version": 1,
            "updated_at": now,
        }
        if await insert_missing(conn, accounts, [row]):
            opening = {
                "account_id": account_id,
                "kind": "opening",
                "amount": balance,
                "balance_after": balance,
                "created_at": now,
            }
            await conn.execute(movements.insert().values(opening))


DEMO = DemoData(tables=[accounts, charges, movements], seed=seed)


async def seed_demo_data(database_url: str) -> None:
    """Seed the demo accounts into the (migrated) payments database; idempotent."""
    await seed_database(database_url, DEMO)
