"""Alembic, driven from code: upgrade to head and tell whether a database is at head."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.settings import normalise_database_url

ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"
SECTION = "orchestrator"


def alembic_config(database_url: str, section: str = SECTION) -> Config:
    config = Config(str(ALEMBIC_INI), ini_section=section)
    config.attributes["url"] = normalise_database_url(database_url)
    return config


def upgrade(database_url: str) -> None:
    """Run the orchestrator's migrations to head (blocking; call before the loop starts)."""
    from orchestrator.store.engine import ensure_sqlite_directory, is_sqlite

    if is_sqlite(database_url):
        ensure_sqlite_directory(database_url)
    command.upgrade(alembic_config(database_url), "head")


def head_revision() -> str | None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return script.get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


async def at_head(engine: AsyncEngine) -> bool:
    return await current_revision(engine) == head_revision()
