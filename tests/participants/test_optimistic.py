"""``update_versioned`` against a real database: no lost update, bounded retries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
import sqlalchemy as sa

from participants.kit import (
    Database,
    RowNotFound,
    VersionConflict,
    seed_database,
    update_versioned,
)
from participants.kit.settings import normalise_database_url
from participants.payments.demo import DEMO
from participants.payments.schema import accounts, movements
from tests.participants.conftest import MakeDatabase


@pytest.fixture
async def db(make_database: MakeDatabase) -> AsyncIterator[Database]:
    url = make_database("payments")
    await seed_database(url, DEMO)
    database = Database.connect(normalise_database_url(url))
    yield database
    await database.dispose()


def add(amount: int) -> Any:
    def change(row: Mapping[str, Any]) -> dict[str, Any]:
        return {"balance": row["balance"] + amount}

    return change


async def read(db: Database, account: str) -> dict[str, Any]:
    async with db.read() as conn:
        query = sa.select(accounts).where(accounts.c.id == account)
        return dict((await conn.execute(query)).mappings().one())


async def test_an_update_writes_the_change_and_the_next_version(db: Database) -> None:
    async with db.transaction() as conn:
        written = await update_versioned(conn, accounts, "bob", add(5))

    assert (written["balance"], written["version"]) == (505, 2)
    assert await read(db, "bob") == written


async def test_no_change_writes_nothing(db: Database) -> None:
    async with db.transaction() as conn:
        row = await update_versioned(conn, accounts, "bob", lambda row: None)

    assert row["version"] == 1
    assert (await read(db, "bob"))["version"] == 1


async def test_a_missing_row_is_a_404_rejection(db: Database) -> None:
    async with db.transaction() as conn:
        with pytest.raises(RowNotFound) as raised:
            await update_versioned(conn, accounts, "nobody", add(1))
    assert (raised.value.code, raised.value.status) == ("account_not_found", 404)


async def test_a_table_without_a_version_is_refused(db: Database) -> None:
    async with db.transaction() as conn:
        with pytest.raises(TypeError, match="version"):
            await update_versioned(conn, movements, 1, add(1))


async def test_concurrent_writers_lose_no_update(db: Database) -> None:
    conflicts: list[int] = []

    async def increment() -> None:
        async with db.transaction() as conn:
            await update_versioned(
                conn, accounts, "carol", add(1), on_conflict=lambda: conflicts.append(1)
            )

    await asyncio.gather(*(increment() for _ in range(30)))

    row = await read(db, "carol")
    assert (row["balance"], row["version"]) == (130, 31)
    print(f"\n{db.engine.dialect.name}: {len(conflicts)} conflicts retried for 30 increments")


async def test_a_writer_out_of_attempts_gives_up_without_writing(db: Database) -> None:
    async def increment() -> str:
        try:
            async with db.transaction() as conn:
                await update_versioned(conn, accounts, "carol", add(1), max_attempts=1)
        except VersionConflict as conflict:
            return conflict.code
        return "written"

    outcomes = await asyncio.gather(*(increment() for _ in range(20)))

    written = outcomes.count("written")
    assert written + outcomes.count("version_conflict") == 20
    row = await read(db, "carol")
    assert (row["balance"], row["version"]) == (100 + written, 1 + written)
    if not db.is_sqlite:  # SQLite serialises writers: nobody ever loses a race there
        assert written < 20
