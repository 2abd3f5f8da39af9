"""Database engines: asyncpg for PostgreSQL, aiosqlite for the embedded default.

Every engine built here raises :class:`StoreUnavailable` when the database
cannot serve (see :mod:`orchestrator.store.unavailable`), so no caller
outside the store names SQLAlchemy's exceptions.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from orchestrator import json_codec
from orchestrator.settings import normalise_database_url
from orchestrator.store.unavailable import UnavailableOnConnect, raise_unavailable


def is_sqlite(url: str) -> bool:
    return make_url(normalise_database_url(url)).get_backend_name() == "sqlite"


def _sqlite_file(url: str) -> str | None:
    database = make_url(normalise_database_url(url)).database
    return database if database and database != ":memory:" else None


def ensure_sqlite_directory(url: str) -> None:
    database = _sqlite_file(url)
    if database is not None:
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def create_engine(
    url: str,
    pool_size: int = 20,
    stall_limit_s: float = 15.0,
    on_commit: Callable[[], None] | None = None,
    *,
    connect_timeout_s: float = 5.0,
    command_timeout_s: float = 10.0,
    pool_timeout_s: float = 5.0,
) -> AsyncEngine:
    """An async engine for ``url``, set up for many concurrent writers.

    ``on_commit`` is called after every commit (the process's commit counter).

    The three timeouts bound every wait on PostgreSQL by the client's own
    clock, so that a database that went silent (a partition: no error, no
    reset, the packets just stop) is an error within seconds rather than a
    hang: ``connect_timeout_s`` for opening a session, ``command_timeout_s``
    for each statement (its answer included), ``pool_timeout_s`` for a free
    connection of the pool. Each raises :class:`StoreUnavailable`, and a
    connection whose statement timed out is discarded, never reused.

    ``stall_limit_s`` bounds how long a session may sit idle inside a transaction
    (PostgreSQL ends it after that): a worker frozen mid-write would otherwise
    keep its row lock, and ``SKIP LOCKED`` claims would pass that saga over for
    as long as the process stays frozen. Our transactions never wait on anything
    but the database, so the limit never touches a healthy one.
    """
    url = normalise_database_url(url)
    engine: AsyncEngine
    if not is_sqlite(url):
        server_settings = {
            "idle_in_transaction_session_timeout": str(max(1000, int(stall_limit_s * 1000))),
            # Notice a vanished client (a host that died) within ~30 s, not hours.
            "tcp_keepalives_idle": "10",
            "tcp_keepalives_interval": "5",
            "tcp_keepalives_count": "3",
        }
        engine = create_async_engine(
            url,
            poolclass=UnavailableOnConnect,
            # A fixed pool: overflow connections are closed on return, so under
            # a steady load above the pool size every few statements paid for a
            # new session (a backend fork, TLS probe, authentication, statement
            # preparation). Waiting a moment for a warm connection is cheaper,
            # and the number of sessions stays what capacity planning assumed.
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=pool_timeout_s,
            connect_args={
                "server_settings": server_settings,
                "timeout": connect_timeout_s,
                "command_timeout": command_timeout_s,
            },
            json_serializer=json_codec.dumps_str,
        )
    else:
        ensure_sqlite_directory(url)
        # A file database gets the queue pool SQLAlchemy would choose, able to
        # report an exhausted pool; an in-memory one keeps its static pool.
        pool = {"poolclass": UnavailableOnConnect} if _sqlite_file(url) is not None else {}
        engine = create_async_engine(url, connect_args={"timeout": 30}, **pool)
        _make_sqlite_transactions_immediate(engine)
    event.listen(engine.sync_engine, "handle_error", raise_unavailable)
    if on_commit is not None:
        event.listen(engine.sync_engine, "commit", lambda _conn: on_commit())
    return engine


def single_statements(engine: AsyncEngine) -> AsyncEngine:
    """The same pool, for work that is one statement: no ``BEGIN``/``COMMIT`` round trips.

    On PostgreSQL a lone statement is its own transaction, so running it in
    autocommit saves two of its three round trips. SQLite keeps the
    transactional engine: its ``BEGIN IMMEDIATE`` is what orders writers.
    """
    if engine.dialect.name != "postgresql":
        return engine
    return engine.execution_options(isolation_level="AUTOCOMMIT")


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
