"""Alembic environment of the orchestrator's database (async engines)."""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from orchestrator.settings import normalise_database_url
from orchestrator.store.engine import create_engine
from orchestrator.store.schema import metadata

config = context.config
target_metadata = metadata


def _url() -> str:
    url = config.attributes.get("url") or os.environ.get("SAGA_DATABASE_URL")
    if not url:
        from orchestrator.settings import Settings

        url = Settings().database_url
    return normalise_database_url(url)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=config.get_main_option("version_table") or "alembic_version",
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_engine(_url())
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
