"""Fixtures for the participant kit and the example services.

Every kit test runs on SQLite (a file in the test's tmp_path) and on
PostgreSQL (a database cloned from a migrated template), with the services
served by real uvicorn on loopback and called over real HTTP.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from participants.kit import ParticipantSettings, upgrade
from participants.registry import SERVICES
from tests.support.databases import create_database, drop_database, pg_url, unique_name
from tests.support.servers import serve_app

MakeDatabase = Callable[[str], str]


class Templates:
    """Databases migrated once per session per service, cloned for each test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sqlite: dict[str, Path] = {}
        self.postgres: dict[str, str] = {}

    def sqlite_file(self, service: str) -> Path:
        if service not in self.sqlite:
            path = self.root / f"{service}.db"
            upgrade(service, f"sqlite+aiosqlite:///{path}")
            self.sqlite[service] = path
        return self.sqlite[service]

    def postgres_name(self, service: str) -> str:
        if service not in self.postgres:
            name = unique_name(f"tpl_{service}")
            create_database(name)
            upgrade(service, pg_url(name))
            self.postgres[service] = name
        return self.postgres[service]

    def drop(self) -> None:
        for name in self.postgres.values():
            drop_database(name)


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    found = Templates(tmp_path_factory.mktemp("templates"))
    yield found
    found.drop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_database(backend: str, templates: Templates, tmp_path: Path) -> Iterator[MakeDatabase]:
    """A factory: a fresh, migrated database for a service, returned as its URL."""
    created: list[str] = []

    def make(service: str) -> str:
        if backend == "sqlite":
            path = tmp_path / f"{service}-{len(created)}.db"
            shutil.copyfile(templates.sqlite_file(service), path)
            created.append(str(path))
            return f"sqlite+aiosqlite:///{path}"
        name = unique_name(f"t_{service}")
        create_database(name, template=templates.postgres_name(service))
        created.append(name)
        return pg_url(name)

    yield make
    if backend == "postgres":
        for name in created:
            drop_database(name)


async def start(
    service: str, url: str, *, faults: bool = True, seed: bool = True, **values: Any
) -> tuple[ParticipantSettings, FastAPI]:
    """Settings and app for ``service`` on ``url`` (seeded unless told not to)."""
    spec = SERVICES[service]
    if seed:
        await spec.seed(url)
    settings = ParticipantSettings(database_url=url, enable_faults=faults, **values)
    return settings, spec.create_app(settings)


async def _client(service: str, make_database: MakeDatabase) -> AsyncIterator[httpx.AsyncClient]:
    _, app = await start(service, make_database(service))
    async with serve_app(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
        yield client


@pytest.fixture
async def payments(make_database: MakeDatabase) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a running, seeded payments service with faults enabled."""
    async for client in _client("payments", make_database):
        yield client


@pytest.fixture
async def inventory(make_database: MakeDatabase) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a running, seeded inventory service with faults enabled."""
    async for client in _client("inventory", make_database):
        yield client


@pytest.fixture
async def orders(make_database: MakeDatabase) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a running orders service with faults enabled."""
    async for client in _client("orders", make_database):
        yield client


@pytest.fixture
async def shipping(make_database: MakeDatabase) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a running shipping service with faults enabled."""
    async for client in _client("shipping", make_database):
        yield client
