"""Fixtures of the hardening tests: a cloned PostgreSQL database and a scripted participant.

Every test here runs the real service over HTTP on loopback; those that need
the server's slow-client protection serve it the way ``saga serve`` does
(:func:`tests.hardening.helpers.serve_like_production`).
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
