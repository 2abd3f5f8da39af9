from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from orchestrator.store import migrate
from tests.support.fixtures import participant, participant_url, template_db
from tests.support.orchestrator import cloned_database, fast_settings, running_orchestrator

__all__ = ["api", "database_url", "participant", "participant_url", "template_db"]


@pytest.fixture(params=["postgres", "sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every API test runs on both backends: a cloned PostgreSQL database and a SQLite file."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/orchestrator.db"
        migrate.upgrade(url)
        yield url
        return
    with cloned_database(request.getfixturevalue("template_db")) as url:
        yield url


@pytest.fixture
async def api(database_url: str, participant_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = fast_settings(database_url, {"p": [participant_url]})
    async with running_orchestrator(settings) as client:
        yield client
