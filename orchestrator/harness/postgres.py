"""Throwaway PostgreSQL for the tooling and the tests: databases on a server, private clusters.

Two kinds, for two needs:

- :class:`Throwaways`: databases created on a server others may use (the
  local PostgreSQL, or the one of a given URL) with ``CREATE DATABASE``,
  optionally cloned from a migrated template, and dropped together at the end;
- :class:`PgCluster`: a cluster of one's own, for what cannot be staged on a
  shared server (stopping it, crashing it): ``initdb`` in a temporary
  directory, trust authentication, loopback only, its own port. PostgreSQL
  refuses to run as root; as root the cluster runs as the ``postgres`` system
  user (through ``runuser``). :meth:`PgCluster.crash` is ``pg_ctl stop -m
  immediate``: the server processes quit without a checkpoint, exactly as if
  they had been killed, and the next start replays the WAL.

Statements go through asyncpg, a dependency of the product, so the tools need
nothing the tests alone install.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from orchestrator.harness.processes import down_for, free_port

PG_BIN_ROOT = Path("/usr/lib/postgresql")

#: How long one administrative statement (CREATE/DROP DATABASE) may take.
STATEMENT_TIMEOUT_S = 30.0


class ClusterError(RuntimeError):
    """A private cluster could not be created, started or stopped."""


def local_admin_url() -> str:
    """The local PostgreSQL's maintenance database, from the usual ``PG*`` variables."""
    host = os.environ.get("PGHOST", "127.0.0.1")
    port = os.environ.get("PGPORT", "5432")
    user = os.environ.get("PGUSER", "postgres")
    return f"postgresql+asyncpg://{user}@{host}:{port}/postgres"


def plain_dsn(url: str) -> str:
    """``postgresql+asyncpg://…`` -> ``postgresql://…`` (what asyncpg and DBOS accept)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def with_database(url: str, database: str, driver: str | None = None) -> str:
    """``url`` naming ``database`` instead (and SQLAlchemy driver ``driver``, if given)."""
    changed = make_url(url).set(database=database)
    if driver is not None:
        changed = changed.set(drivername=f"postgresql+{driver}")
    return changed.render_as_string(hide_password=False)


async def execute(admin_url: str, *statements: str) -> None:
    """Run ``statements`` one by one outside any transaction (``CREATE DATABASE`` needs that)."""
    async with asyncio.timeout(STATEMENT_TIMEOUT_S):
        conn = await asyncpg.connect(plain_dsn(admin_url))
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()


async def answers(url: str) -> bool:
    """Whether a PostgreSQL server answers at ``url`` within a few seconds."""
    try:
        async with asyncio.timeout(5):
            await execute(url, "SELECT 1")
    except Exception:  # any failure means "not usable", whatever the driver raised
        return False
    return True


async def create_database(admin_url: str, name: str, template: str | None = None) -> str:
    """``CREATE DATABASE name`` (cloned from ``template``); returns its URL like ``admin_url``.

    Cloning a template migrated once is much faster than migrating every
    database, and each clone is fully isolated from the others.
    """
    clause = f' TEMPLATE "{template}"' if template else ""
    await execute(admin_url, f'CREATE DATABASE "{name}"{clause}')
    return with_database(admin_url, name)


async def drop_database(admin_url: str, name: str) -> None:
    """``DROP DATABASE IF EXISTS name WITH (FORCE)``: its sessions are ended first."""
    await execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Throwaways:
    """Databases created on one server for one run, dropped together at its end."""

    admin_url: str
    """The server's maintenance database (``…/postgres``)."""
    created: list[str] = field(default_factory=list)

    def url(self, name: str, driver: str | None = None) -> str:
        """The URL of database ``name`` on this server."""
        return with_database(self.admin_url, name, driver)

    async def create(self, name: str, template: str | None = None) -> str:
        """Create ``name`` (remembered for :meth:`drop_all`); returns its URL."""
        url = await create_database(self.admin_url, name, template)
        self.created.append(name)
        return url

    async def drop_all(self) -> None:
        """Drop every database created here, newest first."""
        for name in reversed(self.created):
            await drop_database(self.admin_url, name)
        self.created.clear()


def find_binary(name: str) -> str:
    """``initdb``/``pg_ctl``: on PATH, else in the newest ``/usr/lib/postgresql/*/bin``."""
    found = shutil.which(name)
    if found:
        return found
    # Debian keeps the server binaries off PATH, one directory per major version.
    versions = sorted(
        (d for d in PG_BIN_ROOT.glob("*/bin") if d.parent.name.isdigit()),
        key=lambda d: int(d.parent.name),
        reverse=True,
    )
    for directory in versions:
        if (directory / name).exists():
            return str(directory / name)
    raise ClusterError(f"{name} not found: install the PostgreSQL server binaries")


def server_binaries_installed() -> bool:
    """Whether a private cluster can be made here (``initdb`` and ``pg_ctl`` found)."""
    try:
        find_binary("initdb")
        find_binary("pg_ctl")
    except ClusterError:
        return False
    return True


#: Settings for a cluster whose data is thrown away: no durability work at all.
NOT_DURABLE = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


@dataclass
class PgCluster:
    """One PostgreSQL cluster in a temporary directory, owned by whoever created it."""

    root: Path
    port: int
    user: str | None
    """The system user the server runs as (None: this process's user)."""
    log: Path
    crashes: list[tuple[float, float]] = field(default_factory=list)
    """(down at, up again at), ``time.monotonic()`` seconds."""

    @property
    def data(self) -> Path:
        """The data directory."""
        return self.root / "data"

    def url(self, database: str) -> str:
        """The asyncpg URL of ``database`` on this cluster."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    @classmethod
    def create(
        cls, max_connections: int = 300, settings: Mapping[str, str] | None = None
    ) -> PgCluster:
        """``initdb`` a fresh cluster (not started yet), with ``settings`` in its configuration."""
        user = "postgres" if os.geteuid() == 0 else None
        root = Path(tempfile.mkdtemp(prefix="saga-pg-"))
        cluster = cls(root, free_port(), user, root / "server.log")
        try:
            if user is not None:
                shutil.chown(root, user)
            cluster._run(
                find_binary("initdb"),
                "-D",
                str(cluster.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            )
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(cluster.port),
            "unix_socket_directories": f"'{root}'",
            "max_connections": str(max_connections),
            "shared_buffers": "64MB",
            **(settings or {}),
        }
        with (cluster.data / "postgresql.conf").open("a") as file:
            file.write("".join(f"{k} = {v}\n" for k, v in conf.items()))
        return cluster

    def _run(self, *argv: str, timeout: float = 120) -> str:
        command = list(argv)
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, cwd=self.root, check=False
        )
        if done.returncode != 0:
            raise ClusterError(f"{' '.join(argv[:2])} failed: {done.stderr.strip() or done.stdout}")
        return done.stdout

    def start(self, timeout_s: float = 60) -> None:
        """Start the server and wait until it accepts connections (replays WAL after a crash)."""
        self._run(
            find_binary("pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            str(int(timeout_s)),
            "start",
        )

    def stop(self, mode: str = "fast", timeout_s: float = 60) -> None:
        """``pg_ctl stop -m mode`` and wait until the server is down.

        ``fast`` ends the sessions and checkpoints; ``immediate`` is a crash.
        """
        self._run(
            find_binary("pg_ctl"),
            "-D",
            str(self.data),
            "-m",
            mode,
            "-w",
            "-t",
            str(int(timeout_s)),
            "stop",
        )

    def running(self) -> bool:
        """Whether the server is up (its postmaster has a pid file)."""
        return (self.data / "postmaster.pid").exists()

    def crash(self) -> float:
        """Kill the server without a checkpoint (``-m immediate``); returns when it went down."""
        self.stop("immediate")
        return time.monotonic()

    async def crash_for(self, down_s: float) -> tuple[float, float]:
        """Crash, stay down ``down_s`` seconds, start again; returns (down at, up at)."""
        down, up = await down_for(self.crash, self.start, down_s)
        self.crashes.append((down, up))
        return down, up

    def destroy(self) -> None:
        """Stop the server (if running) and delete every file of the cluster."""
        with contextlib.suppress(ClusterError, subprocess.TimeoutExpired):  # not running
            self._run(find_binary("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def private_cluster(
    max_connections: int = 300, settings: Mapping[str, str] | None = None
) -> Iterator[PgCluster]:
    """A started :class:`PgCluster` with database ``postgres``; destroyed on exit."""
    cluster = PgCluster.create(max_connections, settings)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()
