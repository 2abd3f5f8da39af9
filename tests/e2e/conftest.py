"""End-to-end fixtures: real ``saga serve`` processes against a cloned PostgreSQL database.

- ``template_db`` (session): a database migrated to head; ``database_url`` clones it per test.
- ``participant`` / ``participant_url``: the scripted participant, served over real HTTP by
  uvicorn inside the test's own event loop (so its ledger can be read directly).
- ``saga_servers``: starts ``saga serve --port N`` as real subprocesses (the ``saga`` console
  script next to ``sys.executable``), configured only through ``SAGA_*`` environment
  variables, waits for ``/readyz``; at teardown every process still alive is stopped
  (SIGTERM, then SIGKILL), and the logs of a failed test are printed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import SagaServers
from tests.support.orchestrator import cloned_database, orchestrator_template
from tests.support.participant import ScriptedParticipant
from tests.support.servers import serve_app

# -- reporting a failed test's server logs ------------------------------------------------


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    report = getattr(request.node, "report_call", None)
    return report is None or report.failed


# -- fixtures ------------------------------------------------------------------------------


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
async def saga_servers(
    request: pytest.FixtureRequest, tmp_path: Path, database_url: str, participant_url: str
) -> AsyncIterator[SagaServers]:
    servers = SagaServers(tmp_path, database_url, {"p": [participant_url]})
    try:
        yield servers
    finally:
        await servers.stop_all()
        if _failed(request):
            servers.dump_logs()
