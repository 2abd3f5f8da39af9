"""A call whose sender no longer holds the saga is not sent; the lease clock says when."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from orchestrator.clock import utcnow
from orchestrator.machine import OutcomeKind
from orchestrator.transport.call import NOT_SENT, CallIdentity, CallRequest
from orchestrator.transport.client import ParticipantClient
from orchestrator.transport.routing import Routing
from orchestrator.worker.leases import LeaseClock
from tests.support.servers import serve_app

CALL = CallIdentity("orders", "payments", "charge", "action", "5b1c", 1)


@pytest.fixture
async def participant() -> AsyncIterator[tuple[str, list[str]]]:
    seen: list[str] = []

    async def handle(request: Request) -> JSONResponse:
        seen.append(request.headers["idempotency-key"])
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/charge", handle, methods=["POST"])])
    async with serve_app(app) as url:
        yield url, seen


@pytest.mark.parametrize("held", [True, False])
async def test_the_transport_asks_right_before_sending(
    participant: tuple[str, list[str]], held: bool
) -> None:
    url, seen = participant
    client = ParticipantClient(Routing({"payments": [url]}))
    try:
        request = CallRequest(CALL, "/charge", {}, timeout_s=5, still_held=lambda: held)
        result = await client.call(request)
    finally:
        await client.aclose()
    if held:
        assert result.kind is OutcomeKind.SUCCEEDED
        assert len(seen) == 1
    else:
        assert (result.kind, result.error, result.url) == (OutcomeKind.TRANSIENT, NOT_SENT, None)
        assert seen == []


def test_a_lease_holds_until_its_expiry_and_not_after() -> None:
    clock, held, gone, never = LeaseClock(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    clock.granted([held], utcnow() + timedelta(minutes=5))
    clock.granted([gone], utcnow() - timedelta(seconds=1))
    assert clock.valid(held)
    assert not clock.valid(gone)
    assert not clock.valid(never)
    clock.forget(held)
    assert not clock.valid(held)
