"""The wire tap relays real HTTP unchanged and records each call (real sockets on loopback)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from orchestrator.check.wire import WireTap
from orchestrator.harness.processes import wait_until
from tests.support.servers import serve_app


def participant() -> FastAPI:
    app = FastAPI()

    @app.post("/do")
    async def do(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"key": request.headers["Idempotency-Key"], "echo": body}, 201)

    @app.post("/slow")
    async def slow() -> JSONResponse:
        await asyncio.sleep(0.6)
        return JSONResponse({"slow": True})

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for n in range(3):
                yield f"part{n};".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    return app


@pytest.fixture
async def tap() -> AsyncIterator[tuple[WireTap, str]]:
    async with serve_app(participant()) as url:
        wire = WireTap({"p": url})
        routes = await wire.open("w1")
        try:
            yield wire, routes["p"][0]
        finally:
            await wire.close()


def headers(attempt: int) -> dict[str, str]:
    return {
        "Idempotency-Key": "s1:charge:action",
        "X-Saga-Id": "s1",
        "X-Saga-Step": "charge",
        "X-Saga-Attempt": str(attempt),
    }


async def test_calls_pass_unchanged_and_are_recorded(tap: tuple[WireTap, str]) -> None:
    wire, url = tap
    async with httpx.AsyncClient(base_url=url) as client:
        first = await client.post("/do", json={"amount": 5}, headers=headers(1))
        second = await client.post("/do", json={"amount": 5}, headers=headers(2))
        streamed = await client.get("/stream")
    assert first.status_code == second.status_code == 201
    assert first.json() == {"key": "s1:charge:action", "echo": {"amount": 5}}
    assert streamed.text == "part0;part1;part2;"
    posts = [c for c in wire.calls if c.method == "POST"]
    assert [(c.key, c.saga_id, c.step, c.attempt, c.status) for c in posts] == [
        ("s1:charge:action", "s1", "charge", 1, 201),
        ("s1:charge:action", "s1", "charge", 2, 201),
    ]
    assert {c.worker for c in wire.calls} == {"w1"}
    assert not any(c.answer_lost for c in wire.calls)


async def test_a_call_is_in_flight_until_the_participant_answers(tap: tuple[WireTap, str]) -> None:
    wire, url = tap
    async with httpx.AsyncClient(base_url=url) as client:
        pending = asyncio.create_task(client.post("/slow", headers=headers(1)))
        assert await wait_until(lambda: wire.in_flight("w1") == 1, timeout_s=5)
        assert wire.in_flight() == 1
        assert wire.in_flight("other") == 0
        assert (await pending).json() == {"slow": True}
    assert wire.in_flight("w1") == 0


async def test_an_answer_to_a_caller_that_hung_up_is_counted_lost(tap: tuple[WireTap, str]) -> None:
    wire, url = tap
    async with httpx.AsyncClient(base_url=url, timeout=0.1) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post("/slow", headers=headers(1))
    # The participant still answers; the relay records that nobody was there to hear it.
    assert await wait_until(lambda: len(wire.calls) == 1, timeout_s=5)
    (call,) = wire.calls
    assert call.status == 200
    assert call.answer_lost
