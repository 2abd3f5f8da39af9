"""The participant connection pool, against a real HTTP server on loopback.

It must bound the calls in flight, reuse keep-alive connections, never reuse
a connection the server closed or a call was cancelled on, and give its slot
back whatever happens to a call.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from orchestrator.transport.call import CallIdentity, CallRequest
from orchestrator.transport.client import ParticipantClient
from orchestrator.transport.pool import StackPoolTransport
from orchestrator.transport.routing import Routing
from tests.support.servers import serve_app


@dataclass
class Server:
    url: str = ""
    in_flight: int = 0
    most_in_flight: int = 0
    peers: set[tuple[str, int]] = field(default_factory=set)
    cookies: list[str] = field(default_factory=list)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    seen = Server()

    async def handle(request: Request) -> JSONResponse:
        assert request.client is not None
        seen.peers.add((request.client.host, request.client.port))
        seen.cookies.append(request.headers.get("cookie", ""))
        seen.in_flight += 1
        seen.most_in_flight = max(seen.most_in_flight, seen.in_flight)
        try:
            await asyncio.sleep(float(request.query_params.get("sleep", "0")))
        finally:
            seen.in_flight -= 1
        headers = {"connection": "close"} if "close" in request.query_params else {}
        headers["set-cookie"] = "session=of-one-saga; Path=/"
        return JSONResponse({"ok": True}, headers=headers)

    app = Starlette(routes=[Route("/", handle, methods=["POST"])])
    async with serve_app(app) as url:
        seen.url = url
        yield seen


async def test_calls_in_flight_are_bounded_and_connections_reused(server: Server) -> None:
    async with httpx.AsyncClient(transport=StackPoolTransport(4)) as client:
        for _ in range(3):
            answers = await asyncio.gather(
                *(client.post(f"{server.url}/?sleep=0.05", json={}) for _ in range(12))
            )
            assert [a.status_code for a in answers] == [200] * 12
    assert server.most_in_flight == 4
    assert len(server.peers) == 4  # 36 calls over the same four connections


async def test_a_connection_the_server_closed_is_not_reused(server: Server) -> None:
    async with httpx.AsyncClient(transport=StackPoolTransport(2)) as client:
        for _ in range(3):
            answer = await client.post(f"{server.url}/?close=1", json={})
            assert answer.status_code == 200
    assert len(server.peers) == 3


async def test_a_cancelled_call_gives_its_slot_back_and_its_connection_up(
    server: Server,
) -> None:
    transport = StackPoolTransport(1)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await client.post(f"{server.url}/?sleep=1", json={})
        # The only slot is free again, on a new connection.
        answer = await asyncio.wait_for(client.post(f"{server.url}/", json={}), 5)
        assert answer.status_code == 200
    assert len(server.peers) == 2


async def test_a_refused_connection_is_an_httpx_error_and_frees_the_slot() -> None:
    async with httpx.AsyncClient(transport=StackPoolTransport(1)) as client:
        for _ in range(3):  # would hang on the second try if the slot leaked
            with pytest.raises(httpx.ConnectError):
                await asyncio.wait_for(client.post("http://127.0.0.1:9/", json={}), 5)


async def test_a_participant_cookie_never_rides_on_another_call(server: Server) -> None:
    client = ParticipantClient(Routing({"p": [server.url]}))
    try:
        for saga in ("s1", "s2"):
            identity = CallIdentity("d", "p", "a", "action", saga, 1)
            result = await client.call(CallRequest(identity, "/", {}, timeout_s=5))
            assert result.status == 200
    finally:
        await client.aclose()
    assert server.cookies == ["", ""]
