from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.support.orchestrator import (
    cloned_database,
    fast_settings,
    orchestrator_template,
    running_orchestrator,
)
from tests.support.participant import ScriptedParticipant
from tests.support.servers import serve_app


@pytest.fixture(scope="session")
def template_db() -> Iterator[str]:
    with orchestrator_template() as name:
        yield name


@pytest.fixture
def database_url(template_db: str) -> Iterator[str]:
    with cloned_database(template_db) as url:
        yield url


@pytest.fixture
def participant() -> ScriptedParticipant:
    return ScriptedParticipant()


@pytest.fixture
async def participant_url(participant: ScriptedParticipant) -> AsyncIterator[str]:
    async with serve_app(participant.app()) as url:
        yield url


@pytest.fixture
async def api(database_url: str, participant_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = fast_settings(database_url, {"p": [participant_url]})
    async with running_orchestrator(settings) as client:
        yield client
