"""Throwaway databases for tests: real PostgreSQL databases created and dropped per test.

A schema is migrated once into a template database; each test clones it with
``CREATE DATABASE ... TEMPLATE ...``, which is fast and gives real isolation.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

PG_HOST = os.environ.get("SAGA_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("SAGA_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("SAGA_TEST_PG_USER", "postgres")


def pg_url(database: str, driver: str = "asyncpg") -> str:
    """URL of a database on the test server, for the given SQLAlchemy driver."""
    return f"postgresql+{driver}://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


def _admin_engine() -> sa.Engine:
    # psycopg (sync) for DDL that cannot run in a transaction.
    return sa.create_engine(pg_url("postgres", "psycopg"), isolation_level="AUTOCOMMIT")


def postgres_available() -> bool:
    engine = _admin_engine()
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        return True
    except Exception:
        return False
    finally:
        engine.dispose()


def create_database(name: str, template: str | None = None) -> None:
    engine = _admin_engine()
    try:
        with engine.connect() as conn:
            clause = f" TEMPLATE {template}" if template else ""
            conn.execute(sa.text(f'CREATE DATABASE "{name}"{clause}'))
    finally:
        engine.dispose()


def drop_database(name: str) -> None:
    engine = _admin_engine()
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@contextmanager
def throwaway_database(prefix: str, template: str | None = None) -> Iterator[str]:
    """Create a database (optionally cloned from a template), yield its asyncpg URL, drop it."""
    name = unique_name(prefix)
    create_database(name, template)
    try:
        yield pg_url(name)
    finally:
        drop_database(name)


def ensure_postgres_running() -> None:
    """Start the local cluster the way CI does when it is not answering."""
    if postgres_available():
        return
    versions = os.listdir("/etc/postgresql") if os.path.isdir("/etc/postgresql") else []
    if versions:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", versions[0], "main", "start"],
            check=False,
        )
