"""Each service's Alembic history: creates exactly its tables, is re-runnable, goes back."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from participants.kit import (
    Database,
    ParticipantSettings,
    current_is_head,
    downgrade,
    kit_metadata,
    upgrade,
)
from participants.kit.database import create_engine
from participants.kit.settings import normalise_database_url
from participants.registry import SERVICES
from tests.support.databases import throwaway_database


@pytest.fixture
def empty_url(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/fresh.db"  # the plain form: the kit normalises it
        return
    with throwaway_database("fresh") as url:
        yield url


def combined_metadata(service: str) -> sa.MetaData:
    combined = sa.MetaData()
    service_metadata = import_module(f"participants.{service}.schema").metadata
    for metadata in (kit_metadata, service_metadata):
        for table in metadata.tables.values():
            table.to_metadata(combined)
    return combined


async def schema_drift(db: Database, service: str) -> list[Any]:
    version_table = f"alembic_version_{service}"

    def compare(conn: sa.Connection) -> list[Any]:
        context = MigrationContext.configure(
            conn, opts={"version_table": version_table, "compare_type": True}
        )
        return list(compare_metadata(context, combined_metadata(service)))

    async with db.read() as conn:
        return await conn.run_sync(compare)


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_migrations_create_exactly_the_tables_the_code_uses(
    service: str, empty_url: str
) -> None:
    url = normalise_database_url(empty_url)
    db = Database(create_engine(url, ParticipantSettings(), pooled=False))
    try:
        assert not await current_is_head(db, service)
        upgrade(service, empty_url)
        upgrade(service, empty_url)  # at head already: nothing to do, no error

        assert await current_is_head(db, service)
        assert await schema_drift(db, service) == []

        downgrade(service, empty_url, "base")
        async with db.read() as conn:
            tables = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
        assert tables == {f"alembic_version_{service}"}
        assert not await current_is_head(db, service)
    finally:
        await db.dispose()


def test_upgrade_works_without_a_running_loop(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/sync.db"
    upgrade("orders", url)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert "orders" in sa.inspect(conn).get_table_names()
    engine.dispose()
