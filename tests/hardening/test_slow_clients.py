"""Slow clients: a request head not complete within SAGA_HEAD_TIMEOUT_S closes the connection.

Served exactly as ``saga serve`` serves (uvicorn with ``server_options``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.hardening.helpers import serve_like_production
from tests.support.orchestrator import fast_settings

pytestmark = pytest.mark.postgres

HEAD_TIMEOUT_S = 1.0
PARTIAL_HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


@pytest.fixture
async def base_url(database_url: str, participant_url: str) -> AsyncIterator[str]:
    settings = fast_settings(database_url, {"p": [participant_url]}, head_timeout_s=HEAD_TIMEOUT_S)
    async with serve_like_production(settings) as (url, _app):
        yield url


async def _open(base_url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = base_url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def _read_until_closed(reader: asyncio.StreamReader, timeout_s: float) -> bytes:
    return await asyncio.wait_for(reader.read(), timeout_s)


async def test_200_stalled_heads_do_not_slow_healthz_and_are_closed(base_url: str) -> None:
    connections = [await _open(base_url) for _ in range(200)]
    opened = time.monotonic()
    for _, writer in connections:
        writer.write(PARTIAL_HEAD)
    await asyncio.gather(*(w.drain() for _, w in connections))
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        latencies = []
        for _ in range(20):
            began = time.perf_counter()
            assert (await client.get("/healthz")).status_code == 200
            latencies.append(time.perf_counter() - began)
    assert max(latencies) < 0.25, latencies
    answers = await asyncio.gather(
        *(_read_until_closed(r, HEAD_TIMEOUT_S + 5) for r, _ in connections)
    )
    closed_after = time.monotonic() - opened
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
        body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
        assert body["error"]["code"] == "request_timeout"
    assert HEAD_TIMEOUT_S * 0.9 <= closed_after < HEAD_TIMEOUT_S + 3
    for _, writer in connections:
        writer.close()


async def _collect(reader: asyncio.StreamReader) -> bytes:
    """What the server sent until it closed (or reset) the connection."""
    received = b""
    try:
        while chunk := await reader.read(65536):
            received += chunk
    except ConnectionError:
        pass
    return received


async def test_a_trickling_head_is_cut_off(base_url: str) -> None:
    # One byte every 0.2 s keeps uvicorn's keep-alive timer from ever firing.
    reader, writer = await _open(base_url)
    began = time.monotonic()
    answer = asyncio.create_task(_collect(reader))
    for byte in PARTIAL_HEAD + b"x" * 100:
        if answer.done() or time.monotonic() - began > HEAD_TIMEOUT_S + 3:
            break
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except ConnectionError:
            break
        await asyncio.sleep(0.2)
    received = await asyncio.wait_for(answer, 5)
    assert time.monotonic() - began < HEAD_TIMEOUT_S + 1.5
    assert received.startswith(b"HTTP/1.1 408 "), received[:80]
    writer.close()


async def test_a_silent_connection_is_closed(base_url: str) -> None:
    reader, writer = await _open(base_url)
    began = time.monotonic()
    answer = await _read_until_closed(reader, HEAD_TIMEOUT_S + 5)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - began < HEAD_TIMEOUT_S + 1
    writer.close()


async def test_keep_alive_clients_and_slow_bodies_are_unaffected(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        # Several requests on one kept-alive connection, spaced past the head timeout.
        for _ in range(3):
            assert (await client.get("/healthz")).status_code == 200
            await asyncio.sleep(HEAD_TIMEOUT_S * 1.3)
        assert (await client.get("/healthz")).status_code == 200

        async def slow_body() -> AsyncIterator[bytes]:
            # The head is complete at once; only the body is slow: not a slow head.
            yield b'{"name": "d", '
            await asyncio.sleep(HEAD_TIMEOUT_S * 1.5)
            yield b'"steps": []}'

        response = await client.post(
            "/v1/definitions", content=slow_body(), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422  # answered (empty steps), not cut off


async def test_malformed_and_oversized_heads_get_the_error_shape(base_url: str) -> None:
    for request in (
        b"GARBAGE\r\n\r\n",
        # Over the 16 KiB a head may take: refused at once, not after the head timeout.
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000,
    ):
        reader, writer = await _open(base_url)
        writer.write(request)
        await writer.drain()
        answer = await _read_until_closed(reader, HEAD_TIMEOUT_S / 2)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 "), head
        assert b"application/json" in head
        assert json.loads(body)["error"]["code"] == "bad_request"
        writer.close()
