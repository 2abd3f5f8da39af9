"""Alembic for kit-built services: run a service's history to head, check readiness.

Each service has its own history under ``migrations/<service>/`` and its own
section (and version table) in the repository's ``alembic.ini``. A service's
``env.py`` is one call to :func:`run_migrations`. The database URL comes from
``config.attributes["url"]`` when the caller sets it (as :func:`upgrade`
does), else from ``PARTICIPANT_DATABASE_URL``, else the embedded default.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from participants.kit.database import Database, create_engine
from participants.kit.settings import ParticipantSettings, resolve_database_url

ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def alembic_config(
    service: str, database_url: str | None = None, ini: Path | None = None
) -> Config:
    """The Alembic configuration of ``service`` (its section of ``alembic.ini``)."""
    config = Config(str(ini or ALEMBIC_INI), ini_section=service)
    if database_url is not None:
        config.attributes["url"] = database_url
    return config


def upgrade(
    service: str, database_url: str, *, revision: str = "head", ini: Path | None = None
) -> None:
    """Migrate ``service``'s database to ``revision`` (head by default). Blocking."""
    _run(command.upgrade, alembic_config(service, database_url, ini), revision)


def downgrade(service: str, database_url: str, revision: str, *, ini: Path | None = None) -> None:
    """Migrate ``service``'s database back to ``revision`` (``base``: empty). Blocking."""
    _run(command.downgrade, alembic_config(service, database_url, ini), revision)


def _run(step: Callable[[Config, str], None], config: Config, revision: str) -> None:
    # The async env.py needs an event loop of its own: inside a running loop
    # (an async caller, a test) the command runs on a worker thread.
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        step(config, revision)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="alembic") as pool:
        pool.submit(step, config, revision).result()


async def upgrade_async(service: str, database_url: str, *, ini: Path | None = None) -> None:
    """:func:`upgrade` to head without blocking the event loop."""
    await asyncio.to_thread(upgrade, service, database_url, ini=ini)


async def current_is_head(db: Database, service: str, *, ini: Path | None = None) -> bool:
    """Whether ``db`` carries exactly the head revision(s) of ``service``'s history."""
    heads, version_table = _script_heads(service, ini)

    def read_current(conn: sa.Connection) -> set[str]:
        context = MigrationContext.configure(conn, opts={"version_table": version_table})
        return set(context.get_current_heads())

    async with db.read() as conn:
        current = await conn.run_sync(read_current)
    return current == heads


@functools.cache
def _script_heads(service: str, ini: Path | None) -> tuple[set[str], str]:
    config = alembic_config(service, ini=ini)
    script = ScriptDirectory.from_config(config)
    return set(script.get_heads()), _version_table(config, service)


def _version_table(config: Config, service: str) -> str:
    return config.get_main_option("version_table") or f"alembic_version_{service}"


def run_migrations(service: str, target_metadata: Sequence[sa.MetaData]) -> None:
    """The body of a service's ``env.py``: run the requested migrations."""
    from alembic import context  # only importable while Alembic runs an env.py

    config = context.config
    given = config.attributes.get("url")
    settings = ParticipantSettings(database_url=given) if given else ParticipantSettings()
    url = resolve_database_url(service, settings)
    options: dict[str, Any] = {
        "target_metadata": list(target_metadata),
        "version_table": _version_table(config, service),
        "render_as_batch": url.startswith("sqlite"),
    }
    if context.is_offline_mode():
        context.configure(url=url, literal_binds=True, **options)
        with context.begin_transaction():
            context.run_migrations()
        return

    def run(conn: sa.Connection) -> None:
        context.configure(connection=conn, **options)
        with context.begin_transaction():
            context.run_migrations()

    async def run_online() -> None:
        engine = create_engine(url, settings, pooled=False)
        try:
            async with engine.connect() as conn:
                await conn.run_sync(run)
                await conn.commit()
        finally:
            await engine.dispose()

    asyncio.run(run_online())
