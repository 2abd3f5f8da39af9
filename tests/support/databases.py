"""Throwaway databases for tests: real PostgreSQL databases created and dropped per test.

A schema is migrated once into a template database; each test clones it with
``CREATE DATABASE ... TEMPLATE ...``, which is fast and gives real isolation.
The statements are the harness's (:mod:`orchestrator.harness.postgres`),
called synchronously so that plain fixtures can use them.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from orchestrator.harness import postgres
from orchestrator.harness.processes import run_blocking

PG_HOST = os.environ.get("SAGA_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("SAGA_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("SAGA_TEST_PG_USER", "postgres")


def pg_url(database: str, driver: str = "asyncpg") -> str:
    """URL of a database on the test server, for the given SQLAlchemy driver."""
    return f"postgresql+{driver}://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


ADMIN_URL = pg_url("postgres")


def postgres_available() -> bool:
    """Whether the test server answers."""
    return run_blocking(postgres.answers(ADMIN_URL))


def create_database(name: str, template: str | None = None) -> None:
    """Create database ``name`` on the test server (cloned from ``template``)."""
    run_blocking(postgres.create_database(ADMIN_URL, name, template))


def drop_database(name: str) -> None:
    """Drop database ``name`` from the test server, ending its sessions."""
    run_blocking(postgres.drop_database(ADMIN_URL, name))


def unique_name(prefix: str) -> str:
    """``prefix`` with a random suffix: tests running at once never share a database."""
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
