"""The broker killed and restarted under load: every saga reaches rest, each effect once."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from orchestrator.harness.rabbitmq import RabbitNode
from participants.order_saga import EXAMPLE_INPUT, ORDER_DEFINITION
from tests.broker.conftest import running_services
from tests.participants.conftest import MakeDatabase
from tests.participants.helpers import ledger
from tests.support.orchestrator import (
    FINAL,
    cloned_database,
    fast_settings,
    running_orchestrator,
)

pytestmark = [pytest.mark.postgres, pytest.mark.e2e, pytest.mark.slow]

SAGAS = 40


async def statuses(api: httpx.AsyncClient, ids: list[str]) -> dict[str, str]:
    return {i: (await api.get(f"/v1/sagas/{i}")).json()["status"] for i in ids}


async def test_sagas_survive_the_broker_killed_and_restarted(
    private_broker: RabbitNode, make_pg_database: MakeDatabase, template_db: str
) -> None:
    broker = private_broker.url()
    async with running_services(broker, make_pg_database) as services:
        participants = {
            name: [service.address(broker)] for name, service in services.by_name.items()
        }
        with cloned_database(template_db) as db:
            settings = fast_settings(db, participants)
            async with running_orchestrator(settings) as api:
                assert (await api.post("/v1/definitions", json=ORDER_DEFINITION)).status_code == 201
                ids: list[str] = []

                async def start(n: int) -> None:
                    for k in range(n):
                        saga_input: dict[str, Any] = {**EXAMPLE_INPUT, "amount": 1 + k % 3}
                        answer = await api.post(
                            "/v1/sagas", json={"definition": "order", "input": saga_input}
                        )
                        assert answer.status_code == 201, answer.text
                        ids.append(answer.json()["id"])
                        await asyncio.sleep(0.05)

                starting = asyncio.create_task(start(SAGAS))
                await asyncio.sleep(0.8)  # sagas in flight, commands queued and being answered
                down_at, up_at = await private_broker.crash_for(2.0)
                await starting
                deadline = time.monotonic() + 120
                seen = await statuses(api, ids)
                while not set(seen.values()) <= FINAL - {"failed"}:
                    assert time.monotonic() < deadline, f"sagas stuck: {seen}"
                    await asyncio.sleep(0.5)
                    seen = await statuses(api, ids)
                print(f"broker down {up_at - down_at:.1f}s; outcomes {sorted(seen.values())}")
                sagas = {i: (await api.get(f"/v1/sagas/{i}")).json() for i in ids}
        charges = await ledger(services["payments"].http)
    for saga_id, saga in sagas.items():
        charged = charges.get(f"{saga_id}:charge:action")
        if saga["status"] == "completed":
            assert charged == "applied", saga
        else:  # compensated before its pivot: never charged
            assert charged in (None, "tombstone", "rejected"), (saga, charged)
    assert any(s["status"] == "completed" for s in sagas.values())
    retried = sum(step["attempts"] > 1 for s in sagas.values() for step in s["steps"])
    assert retried > 0, "the broker's death cost no call a retry: it died too late"
