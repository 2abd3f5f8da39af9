"""The benchmark's PostgreSQL databases and their commit counters.

Commits are read from ``pg_stat_database.xact_commit``: every transaction the
server committed in a database, whoever ran it (read-only ones included, so
an empty claim poll counts). A backend reports its counters when a
transaction ends at least a second after its previous report; one that goes
idle sooner keeps them up to ten seconds (PostgreSQL's idle statistics
interval), so every reading is taken :data:`STATS_SETTLE_S` after the load
before it stopped.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg
from sqlalchemy.engine import make_url

from orchestrator.harness.postgres import Throwaways, local_admin_url, plain_dsn

#: Long enough for every idle backend to have reported its counters
#: (PGSTAT_IDLE_INTERVAL is 10 s in PostgreSQL 15 to 17).
STATS_SETTLE_S = 11.0


@dataclass
class Databases:
    """The orchestrator's, the participant's and DBOS's databases on one server, and the
    broker mode's orchestrator's (its own, so that neither ``saga serve``'s idle polls
    count in the other's commits)."""

    server: Throwaways
    orchestrator: str
    participant: str
    dbos: str
    broker: str

    def dsn(self, name: str) -> str:
        """A plain ``postgresql://`` DSN of database ``name`` on the server."""
        return plain_dsn(self.server.url(name))

    async def create(self, *, orchestrator_given: bool) -> None:
        """Create the throwaway databases (all but a given orchestrator database)."""
        wanted = [self.participant, self.dbos, self.broker]
        if not orchestrator_given:
            wanted.insert(0, self.orchestrator)
        for name in wanted:
            await self.server.create(name)

    async def drop(self) -> None:
        """Drop every throwaway database."""
        await self.server.drop_all()

    async def commits(self, name: str) -> int:
        """``xact_commit`` of database ``name`` as the server reports it now."""
        conn = await asyncpg.connect(plain_dsn(self.server.admin_url))
        try:
            await conn.execute("SELECT pg_stat_clear_snapshot()")
            value = await conn.fetchval(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = $1", name
            )
        finally:
            await conn.close()
        return int(value or 0)


def databases_for(run_id: str, database_url: str | None) -> tuple[Databases, bool]:
    """The databases of a run: on the server of ``database_url`` (whose database the
    orchestrator then uses as given), else throwaway ones on the local PostgreSQL.

    Returns them and whether the orchestrator's database was given.
    """
    prefix = f"saga_bench_{run_id}"
    if database_url is None:
        server = Throwaways(plain_dsn(local_admin_url()))
        names = (f"{prefix}_participant", f"{prefix}_dbos", f"{prefix}_broker")
        return Databases(server, prefix, *names), False
    url = make_url(plain_dsn(database_url))
    if url.database is None:
        raise ValueError("--database-url needs a database name")
    server = Throwaways(url.set(database="postgres").render_as_string(hide_password=False))
    names = (f"{prefix}_participant", f"{prefix}_dbos", f"{prefix}_broker")
    return Databases(server, url.database, *names), True


async def settle() -> None:
    """Wait until every backend has reported the transactions it committed."""
    await asyncio.sleep(STATS_SETTLE_S)
