"""Database engines: asyncpg for PostgreSQL, aiosqlite for the embedded default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from orchestrator.settings import normalise_database_url


def is_sqlite(url: str) -> bool:
    return make_url(normalise_database_url(url)).get_backend_name() == "sqlite"


def ensure_sqlite_directory(url: str) -> None:
    database = make_url(normalise_database_url(url)).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def create_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    """An async engine for ``url``, set up for many concurrent writers."""
    url = normalise_database_url(url)
    if not is_sqlite(url):
        return create_async_engine(
            url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False, pool_timeout=5
        )
    ensure_sqlite_directory(url)
    engine = create_async_engine(url, connect_args={"timeout": 30})
    _make_sqlite_transactions_immediate(engine)
    return engine


def _make_sqlite_transactions_immediate(engine: AsyncEngine) -> None:
    # pysqlite opens transactions lazily and upgrades read locks to write locks,
    # which deadlocks concurrent writers ("database is locked"). Taking the write
    # lock at BEGIN makes writers queue on busy_timeout instead.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
