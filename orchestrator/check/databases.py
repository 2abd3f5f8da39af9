"""Where a campaign keeps its data: the orchestrator's database and one per example service.

In order of preference:

1. ``--db-crash``: a private cluster (:class:`~orchestrator.harness.postgres.PgCluster`) holding
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
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from orchestrator.check.fleet import SERVICES
from orchestrator.check.schedule import World
from orchestrator.harness.postgres import (
    PgCluster,
    Throwaways,
    answers,
    local_admin_url,
    with_database,
)
from orchestrator.settings import normalise_database_url, redact_url


@dataclass
class Databases:
    """The campaign's database URLs and what has to be dropped afterwards."""

    orchestrator_url: str
    service_urls: dict[str, str]
    description: str
    cluster: PgCluster | None = None
    throwaways: Throwaways | None = None
    """The throwaway databases and their server (None: nothing to drop)."""

    @property
    def created(self) -> list[str]:
        """The names of the throwaway databases."""
        return [] if self.throwaways is None else list(self.throwaways.created)

    def as_json(self) -> dict[str, object]:
        """Where the data lives, without passwords."""
        return {
            "where": self.description,
            "orchestrator": redact_url(self.orchestrator_url),
            "services": {k: redact_url(v) for k, v in self.service_urls.items()},
            "throwaway": self.created,
        }


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
        admin = with_database(url, "postgres")
    elif await answers(local_admin_url()):
        admin = local_admin_url()
        dbs = Databases("", {}, f"throwaway databases on {make_url(admin).host}")
    else:
        dbs = Databases(
            f"sqlite+aiosqlite:///{workdir / 'orchestrator.db'}",
            _sqlite_files(workdir),
            "SQLite files (no PostgreSQL answered)",
        )
        return dbs
    dbs.throwaways = Throwaways(admin)
    if not dbs.orchestrator_url:
        dbs.orchestrator_url = await dbs.throwaways.create(prefix)
    for service in SERVICES:
        dbs.service_urls[service] = await dbs.throwaways.create(f"{prefix}_{service}")
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
    if dbs.cluster is not None:
        # Its databases go with it: no DROP DATABASE one by one.
        await asyncio.to_thread(dbs.cluster.destroy)
        if dbs.throwaways is not None:
            dbs.throwaways.created.clear()
    elif dbs.throwaways is not None:
        await dbs.throwaways.drop_all()
