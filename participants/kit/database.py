"""One service's database: an async engine set up for safe concurrent writes.

PostgreSQL needs nothing special: row locks and unique indexes make concurrent
transactions wait for each other, and ``lock_timeout`` bounds that wait.

SQLite allows one writer at a time. Left to the ``sqlite3`` driver, a
transaction starts deferred, reads, then fails with "database is locked" when it
tries to upgrade to a write lock that another connection holds — a failure no
busy timeout can cure. So the kit takes transaction control away from the
driver: write transactions open with ``BEGIN IMMEDIATE`` (the write lock is
taken up front, waiting up to ``busy_timeout``), and writers of one process
queue on an ``asyncio.Lock`` first so they wait fairly in the event loop
rather than polling the file lock from driver threads. Readers use a plain
deferred ``BEGIN`` and, thanks to WAL, never block writers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from participants.kit.settings import ParticipantSettings

# Execution option marking a connection whose transactions only read.
_READ_ONLY = "participant_kit_read_only"

# PostgreSQL errors that mean "try again": lock_not_available, deadlock_detected,
# serialization_failure, plus connection-level trouble.
_TRANSIENT_SQLSTATES = {"55P03", "40P01", "40001", "57P01", "57P03", "08000", "08003", "08006"}


class DatabaseBusy(Exception):
    """A write waited longer than the lock timeout for the database: retry later."""


class Database:
    """An async engine plus the transaction discipline the kit relies on."""

    def __init__(self, engine: AsyncEngine, lock_timeout_ms: int = 10_000) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._write_gate = asyncio.Lock() if self.is_sqlite else None
        self._gate_timeout_s = lock_timeout_ms / 1000

    @classmethod
    def connect(cls, url: str, settings: ParticipantSettings | None = None) -> Database:
        """Create the engine for a normalised ``url`` (see :mod:`participants.kit.settings`)."""
        settings = settings or ParticipantSettings()
        return cls(create_engine(url, settings), settings.db_lock_timeout_ms)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed when the block ends, rolled back if it raises.

        Raises :class:`DatabaseBusy` when SQLite's writers queue longer than the
        lock timeout (PostgreSQL reports the same through ``lock_timeout``).
        """
        async with self._gate(), self.engine.begin() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def _gate(self) -> AsyncIterator[None]:
        if self._write_gate is None:
            yield
            return
        try:
            await asyncio.wait_for(self._write_gate.acquire(), self._gate_timeout_s)
        except TimeoutError:
            raise DatabaseBusy("waited too long for SQLite's write lock") from None
        try:
            yield
        finally:
            self._write_gate.release()

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads; never takes SQLite's write lock."""
        async with self.engine.connect() as conn:
            await conn.execution_options(**{_READ_ONLY: True})
            yield conn

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


def create_engine(url: str, settings: ParticipantSettings, *, pooled: bool = True) -> AsyncEngine:
    """An async engine for ``url`` with the kit's per-dialect set-up applied.

    ``pooled=False`` gives a pool-less engine for one-off jobs (migrations, seeding).
    """
    kwargs: dict[str, Any] = {}
    if pooled:
        kwargs.update(pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow)
    else:
        kwargs["poolclass"] = NullPool
    if url.startswith("postgresql"):
        timeout = str(settings.db_lock_timeout_ms)
        kwargs["connect_args"] = {"server_settings": {"lock_timeout": timeout}}
        # No pre-ping: a connection found dead surfaces as a transient error (503),
        # which the caller retries anyway, and pinging would cost a round trip per call.
        return create_async_engine(url, **kwargs)
    engine = create_async_engine(url, **kwargs)
    _take_over_sqlite_transactions(engine, settings.db_lock_timeout_ms)
    return engine


def _take_over_sqlite_transactions(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # None stops the driver from emitting its own (deferred) BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "foreign_keys=ON",
            f"busy_timeout={busy_timeout_ms}",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def is_transient(error: DBAPIError) -> bool:
    """Whether a database error is worth retrying (lock wait, deadlock, busy file)."""
    if error.connection_invalidated:
        return True
    sqlstate = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    if sqlstate in _TRANSIENT_SQLSTATES:
        return True
    message = str(error.orig).lower()
    return "database is locked" in message or "database is busy" in message
