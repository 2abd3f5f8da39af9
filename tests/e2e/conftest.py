"""End-to-end fixtures: real ``saga serve`` processes against a cloned PostgreSQL database.

- ``template_db``, ``database_url``, ``participant``, ``participant_url``: the shared ones
  (:mod:`tests.support.fixtures`).
- ``saga_servers``: starts ``saga serve --port N`` as real subprocesses (the ``saga`` console
  script next to ``sys.executable``), configured only through ``SAGA_*`` environment
  variables, waits for ``/readyz``; at teardown every process still alive is stopped
  (SIGTERM, then SIGKILL), and the logs of a failed test are printed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import SagaServers
from tests.support.fixtures import database_url, participant, participant_url, template_db

__all__ = ["database_url", "participant", "participant_url", "saga_servers", "template_db"]

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
