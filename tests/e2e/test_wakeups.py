"""New work reaches the workers without waiting for a poll.

* A saga started in a process that runs a worker is created leased to that
  worker and driven at once: it is never claimed (``saga_claimed_total`` stays
  0), and the worker's poll is set to a minute, so only the hand-off can
  explain a completion within seconds.
* A saga started through an API-only replica reaches a worker in another
  process through PostgreSQL ``NOTIFY``: again with a one-minute poll.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.e2e.harness import SagaServers, register, start_saga, wait_all_final
from tests.support.orchestrator import step

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

SLOW_POLL = {"poll_interval_s": 60}


async def test_a_saga_started_beside_a_worker_is_driven_without_a_claim(
    saga_servers: SagaServers,
) -> None:
    server = await saga_servers.start(**SLOW_POLL)
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        await register(client, "handoff", [step("a"), step("b")])
        ids = [await start_saga(client, "handoff", {"n": n}) for n in range(5)]
        assert set((await wait_all_final(client, ids, timeout_s=20)).values()) == {"completed"}
    metrics = await server.metrics()
    assert metrics.get("saga_claimed_total", 0) == 0
    assert metrics['saga_finished_total{definition="handoff",status="completed"}'] == 5


async def test_a_saga_started_through_an_api_replica_wakes_a_remote_worker(
    saga_servers: SagaServers,
) -> None:
    worker = await saga_servers.start(role="worker", **SLOW_POLL)
    api = await saga_servers.start(role="api", **SLOW_POLL)
    await asyncio.sleep(1.0)  # the worker's LISTEN connection is up (and its first claim done)
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
        await register(client, "remote", [step("a"), step("b")])
        for n in range(3):
            saga_id = await start_saga(client, "remote", {"n": n})
            final = await wait_all_final(client, [saga_id], timeout_s=20)
            assert final[saga_id] == "completed"
    assert (await worker.metrics())["saga_claimed_total"] == 3
