"""Fixtures shared by the suites that run the real service: a cloned database, a participant.

- ``template_db`` (session): a database migrated to head; ``database_url``
  clones it per test;
- ``participant`` / ``participant_url``: the scripted participant, served over
  real HTTP by uvicorn inside the test's own event loop (so its ledger can be
  read directly).

A suite's ``conftest.py`` imports the ones it uses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.orchestrator import cloned_database, orchestrator_template
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
