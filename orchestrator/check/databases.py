"""Where a campaign keeps its data: the orchestrator's database and one per example service.

In order of preference:

1. ``--db-crash``: a private cluster (:mod:`orchestrator.check.cluster`) holding
   every database, since the crash takes them all down together;
2. ``--database-url``: the orchestrator uses that database as given (the
   campaign judges only the sagas it started); the services get throwaway
   databases beside it on the same server (or SQLite files, for a SQLite URL);
3. otherwise a throwaway database per role on the local PostgreSQL
   (``PGHOST``/``PGPORT``/``PGUSER``, default ``postgres@127.0.0.1:5432``);
4. and when none answers, the embedded default: SQLite files in the
   campaign's directory.

Throwaway databases are dropped at the end unless the campaign keeps them.
Every database is migrated to head and the services are seeded with the
schedule's world (accounts with an opening movement, stock items).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from orchestrator.check.cluster import PgCluster
from orchestrator.check.fleet import SERVICES
from orchestrator.check.schedule import World
from orchestrator.settings import normalise_database_url, redact_url


@dataclass
class Databases:
    """The campaign's database URLs and what has to be dropped afterwards."""

    orchestrator_url: str
    service_urls: dict[str, str]
    description: str
    cluster: PgCluster | None = None
    created: list[tuple[str, str]] = field(default_factory=list)
    """(admin URL, database name) of every throwaway database."""

    def as_json(self) -> dict[str, object]:
        """Where the data lives, without passwords."""
        return {
            "where": self.description,
            "orchestrator": redact_url(self.orchestrator_url),
            "services": {k: redact_url(v) for k, v in self.service_urls.items()},
            "throwaway": [name for _, name in self.created],
        }


def local_postgres_url() -> str:
    """The local PostgreSQL's maintenance database, from the usual ``PG*`` variables."""
    host = os.environ.get("PGHOST", "127.0.0.1")
    port = os.environ.get("PGPORT", "5432")
    user = os.environ.get("PGUSER", "postgres")
    return f"postgresql+asyncpg://{user}@{host}:{port}/postgres"


async def _execute(admin_url: str, *statements: str) -> None:
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with asyncio.timeout(30), engine.connect() as conn:
            for statement in statements:
                await conn.execute(sa.text(statement))
    finally:
        await engine.dispose()


async def answers(url: str) -> bool:
    """Whether a PostgreSQL server answers at ``url`` within a few seconds."""
    try:
        async with asyncio.timeout(5):
            await _execute(url, "SELECT 1")
    except Exception:  # any failure means "not usable", whatever the driver raised
        return False
    return True


async def _throwaway(admin_url: str, name: str, dbs: Databases) -> str:
    await _execute(admin_url, f'CREATE DATABASE "{name}"')
    dbs.created.append((admin_url, name))
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


async def prepare(
    run_id: str, workdir: Path, *, database_url: str | None, own_cluster: bool
) -> Databases:
    """Create (or pick) every database the campaign needs; see the module's docstring."""
    prefix = f"saga_check_{run_id}"
    if own_cluster:
        cluster = await asyncio.to_thread(PgCluster.create)
        await asyncio.to_thread(cluster.start)
        dbs = Databases("", {}, f"private cluster on 127.0.0.1:{cluster.port}", cluster)
        admin = cluster.url("postgres")
    elif database_url is not None:
        url = normalise_database_url(database_url)
        dbs = Databases(url, {}, "the given database; services beside it")
        if url.startswith("sqlite"):
            dbs.service_urls = _sqlite_files(workdir)
            return dbs
        admin = make_url(url).set(database="postgres").render_as_string(hide_password=False)
    elif await answers(local_postgres_url()):
        admin = local_postgres_url()
        dbs = Databases("", {}, f"throwaway databases on {make_url(admin).host}")
    else:
        dbs = Databases(
            f"sqlite+aiosqlite:///{workdir / 'orchestrator.db'}",
            _sqlite_files(workdir),
            "SQLite files (no PostgreSQL answered)",
        )
        return dbs
    if not dbs.orchestrator_url:
        dbs.orchestrator_url = await _throwaway(admin, prefix, dbs)
    for service in SERVICES:
        dbs.service_urls[service] = await _throwaway(admin, f"{prefix}_{service}", dbs)
    return dbs


def _sqlite_files(workdir: Path) -> dict[str, str]:
    return {name: f"sqlite+aiosqlite:///{workdir / f'{name}.db'}" for name in SERVICES}


async def migrate_and_seed(dbs: Databases, world: World) -> None:
    """Every database to head; the world into payments and inventory."""
    from orchestrator.store import migrate
    from participants.kit.migrate import upgrade as upgrade_service

    def upgrade_all() -> None:
        migrate.upgrade(dbs.orchestrator_url)
        for name, url in dbs.service_urls.items():
            upgrade_service(name, url)

    await asyncio.to_thread(upgrade_all)
    await seed_world(dbs.service_urls, world)


async def seed_world(service_urls: dict[str, str], world: World) -> None:
    """Open the world's accounts (each with its opening movement) and stock its items."""
    from participants.inventory.schema import items
    from participants.kit import Database, ParticipantSettings, insert_missing, utcnow
    from participants.kit.database import create_engine
    from participants.payments.schema import accounts, movements

    now = utcnow()
    payments = Database(
        create_engine(service_urls["payments"], ParticipantSettings(), pooled=False)
    )
    try:
        async with payments.transaction() as conn:
            for account, balance in sorted(world.balances.items()):
                row = {"id": account, "owner": account, "balance": balance, "version": 1}
                if await insert_missing(conn, accounts, [{**row, "updated_at": now}]):
                    opening = {"account_id": account, "kind": "opening", "amount": balance}
                    opening.update(balance_after=balance, created_at=now)
                    await conn.execute(movements.insert().values(opening))
    finally:
        await payments.dispose()
    inventory = Database(
        create_engine(service_urls["inventory"], ParticipantSettings(), pooled=False)
    )
    try:
        async with inventory.transaction() as conn:
            stock = [
                {
                    "sku": sku,
                    "name": sku,
                    "available": units,
                    "reserved": 0,
                    "committed": 0,
                    "version": 1,
                    "updated_at": now,
                }
                for sku, units in sorted(world.stock.items())
            ]
            await insert_missing(conn, items, stock)
    finally:
        await inventory.dispose()


async def drop(dbs: Databases) -> None:
    """Drop every throwaway database and destroy the private cluster."""
    for admin_url, name in reversed(dbs.created):
        if dbs.cluster is None:
            await _execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    dbs.created.clear()
    if dbs.cluster is not None:
        await asyncio.to_thread(dbs.cluster.destroy)
