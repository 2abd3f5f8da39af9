"""Completion by callback: 202 now, the completion later, once, surviving a restart.

The shipping service books shipments by callback when a call carries the
orchestrator's callback headers. Completions go to a real loopback HTTP server
(a small receiver app) or to a real orchestrator.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from orchestrator.api.app import create_app as create_orchestrator
from tests.participants.conftest import MakeDatabase, start
from tests.participants.helpers import key
from tests.support.orchestrator import (
    cloned_database,
    fast_settings,
    orchestrator_template,
    running_orchestrator,
    wait_final,
)
from tests.support.servers import free_port, serve_app

SHIPMENT = {"order_id": "o-1", "sku": "A1", "qty": 2, "reservation_id": "r-1"}
FAST: dict[str, Any] = {
    "callback_backoff_ms": 20,
    "callback_max_backoff_ms": 100,
    "callback_poll_ms": 100,
}


@dataclass
class Receiver:
    """Stands in for the orchestrator's completion endpoint and records every call."""

    answers: dict[str, int] = field(default_factory=dict)
    """Status to answer per token (default 200)."""
    received: list[tuple[str, Any]] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/complete")
        async def complete(request: Request) -> JSONResponse:
            token = request.headers.get("X-Saga-Callback-Token", "")
            self.received.append((token, await request.json()))
            return JSONResponse({}, self.answers.get(token, 200))

        return app


def callback(url: str, token: str, attempt: int = 1) -> dict[str, str]:
    return {
        **key("s1", "ship", attempt=attempt),
        "X-Saga-Callback-Url": url,
        "X-Saga-Callback-Token": token,
    }


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def owed(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = (await client.get("/_callbacks")).json()
    return rows


async def test_a_plain_call_is_answered_at_once(make_database: MakeDatabase) -> None:
    _, app = await start("shipping", make_database("shipping"), **FAST)
    async with serve_app(app) as base, httpx.AsyncClient(base_url=base) as client:
        created = await client.post("/shipments", json=SHIPMENT, headers=key("s1", "ship"))
        assert created.status_code == 201
        assert await owed(client) == []


async def test_202_once_and_the_completion_delivered_once_after_a_restart(
    make_database: MakeDatabase,
) -> None:
    url = make_database("shipping")
    receiver, receiver_port = Receiver(), free_port()
    target = f"http://127.0.0.1:{receiver_port}/complete"
    headers = callback(target, "t1")

    # The receiver is not up yet: the completion stays owed while the service runs.
    _, app = await start("shipping", url, **FAST)
    async with serve_app(app) as base, httpx.AsyncClient(base_url=base) as client:
        first = await client.post("/shipments", json=SHIPMENT, headers=headers)
        assert first.status_code == 202, first.text
        assert first.json() == {"accepted": True, "completion": "callback", "key": "s1:ship:action"}
        again = await client.post("/shipments", json=SHIPMENT, headers=headers)
        assert again.status_code == 202
        assert again.headers["Idempotent-Replayed"] == "true"
        assert len((await client.get("/shipments")).json()) == 1

        async def tried() -> bool:
            return [(r["status"], r["tries"] > 0) for r in await owed(client)] == [
                ("pending", True)
            ]

        await until(tried)

    # Restarted with the receiver up: the owed completion is resumed and delivered once.
    _, app = await start("shipping", url, seed=False, **FAST)
    async with (
        serve_app(receiver.app(), receiver_port),
        serve_app(app) as base,
        httpx.AsyncClient(base_url=base) as client,
    ):

        async def delivered() -> bool:
            return [r["status"] for r in await owed(client)] == ["delivered"]

        await until(delivered)
        third = await client.post("/shipments", json=SHIPMENT, headers=headers)
        assert third.status_code == 202
        await asyncio.sleep(0.3)  # time enough for a wrong second completion to go out
        (shipment,) = (await client.get("/shipments")).json()
        assert [(r["key"], r["http_status"]) for r in await owed(client)] == [
            ("s1:ship:action", 200)
        ]
    assert len(receiver.received) == 1
    token, body = receiver.received[0]
    assert token == "t1"
    assert body["outcome"] == "succeeded"
    assert body["result"]["shipment_id"] == shipment["id"]
    assert body["result"]["tracking_number"] == shipment["tracking_number"]


async def test_a_newer_attempt_re_aims_a_refused_completion(make_database: MakeDatabase) -> None:
    receiver = Receiver(answers={"t1": 409})
    async with serve_app(receiver.app()) as receiver_base:
        target = f"{receiver_base}/complete"
        _, app = await start("shipping", make_database("shipping"), **FAST)
        async with serve_app(app) as base, httpx.AsyncClient(base_url=base) as client:
            sent = await client.post("/shipments", json=SHIPMENT, headers=callback(target, "t1"))
            assert sent.status_code == 202

            def status(expected: str, http_status: int) -> Callable[[], Awaitable[bool]]:
                async def check() -> bool:
                    rows = await owed(client)
                    return [(r["status"], r["http_status"]) for r in rows] == [
                        (expected, http_status)
                    ]

                return check

            await until(status("refused", 409))  # too late for attempt 1: stop
            retried = await client.post(
                "/shipments", json=SHIPMENT, headers=callback(target, "t2", attempt=2)
            )
            assert retried.status_code == 202
            await until(status("delivered", 200))
            # A late duplicate of attempt 1 changes nothing.
            late = await client.post("/shipments", json=SHIPMENT, headers=callback(target, "t1"))
            assert late.status_code == 202
            await asyncio.sleep(0.3)
            assert [r["attempt"] for r in await owed(client)] == [2]
            assert len((await client.get("/shipments")).json()) == 1
    assert [token for token, _ in receiver.received] == ["t1", "t2"]


async def test_a_compensation_undoes_what_the_completion_reported(
    make_database: MakeDatabase,
) -> None:
    receiver = Receiver()
    async with serve_app(receiver.app()) as receiver_base:
        _, app = await start("shipping", make_database("shipping"), **FAST)
        async with serve_app(app) as base, httpx.AsyncClient(base_url=base) as client:
            headers = callback(f"{receiver_base}/complete", "t1")
            assert (await client.post("/shipments", json=SHIPMENT, headers=headers)).is_success
            undo = await client.post(
                "/shipments/cancel", json={}, headers=key("s1", "ship", "compensation")
            )
            assert undo.status_code == 200, undo.text
            (shipment,) = (await client.get("/shipments")).json()
            assert undo.json() == {"shipment_id": shipment["id"], "status": "cancelled"}


ASYNC_SHIPPING = {
    "name": "ship_async",
    "steps": [
        {
            "name": "book",
            "participant": "shipping",
            "completion": "callback",
            "action": {"path": "/shipments", "body": {"order_id": "o-9", "sku": "A1", "qty": 1}},
            "compensation": {"path": "/shipments/cancel"},
            "retry": {"max_attempts": 3, "initial_backoff_ms": 10, "max_backoff_ms": 50},
            "timeout_ms": 30000,
        }
    ],
}


@pytest.fixture
def orchestrator_url() -> Iterator[str]:
    with orchestrator_template() as template, cloned_database(template) as url:
        yield url


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_real_orchestrator_gets_the_completion_after_the_service_restarts(
    make_database: MakeDatabase, orchestrator_url: str
) -> None:
    service_url, service_port, late_api_port = make_database("shipping"), free_port(), free_port()
    participants = {"shipping": [f"http://127.0.0.1:{service_port}"]}
    settings = fast_settings(orchestrator_url, participants)
    # The worker sends completions to an API replica that is not up yet.
    worker_settings = fast_settings(
        orchestrator_url, participants, public_url=f"http://127.0.0.1:{late_api_port}"
    )
    _, service = await start("shipping", service_url, **FAST)
    async with (
        running_orchestrator(settings, role="api") as api,
        running_orchestrator(worker_settings, role="worker"),
    ):
        assert (await api.post("/v1/definitions", json=ASYNC_SHIPPING)).status_code == 201
        async with (
            serve_app(service, service_port) as base,
            httpx.AsyncClient(base_url=base) as client,
        ):
            started = await api.post("/v1/sagas", json={"definition": "ship_async"})
            saga_id = started.json()["id"]

            async def refused_connection() -> bool:
                return [r["tries"] > 0 for r in await owed(client)] == [True]

            await until(refused_connection)
        running = (await api.get(f"/v1/sagas/{saga_id}")).json()
        assert running["status"] == "running"

        _, service = await start("shipping", service_url, seed=False, **FAST)
        late_api = create_orchestrator(settings, role="api")
        async with serve_app(late_api, late_api_port), serve_app(service, service_port):
            saga = await wait_final(api, saga_id)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service_port}") as c:
                (shipment,) = (await c.get("/shipments")).json()
                (completion,) = await owed(c)
    assert saga["status"] == "completed", saga
    assert saga["results"]["book"]["shipment_id"] == shipment["id"]
    assert completion["status"] == "delivered"
    assert completion["http_status"] == 200
