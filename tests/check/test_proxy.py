"""The partition proxy: bytes vanish while it is cut, nothing is refused (loopback sockets)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from orchestrator.harness.processes import wait_until
from orchestrator.harness.proxy import PartitionProxy

#: How long a test watches for bytes that must not come (absence, never a speed).
SILENCE_S = 0.3


@dataclass
class EchoServer:
    """Answers every chunk with ``echo:<chunk>``; remembers what it was sent."""

    received: bytearray = field(default_factory=bytearray)
    connections: int = 0
    closed_by_client: int = 0
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while data := await reader.read(1024):
                self.received += data
                writer.write(b"echo:" + data)
                await writer.drain()
            self.closed_by_client += 1
        except ConnectionError:
            pass
        finally:
            writer.close()


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    server = EchoServer()
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = listening.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listening.close()


@pytest.fixture
async def proxy(echo: EchoServer) -> AsyncIterator[PartitionProxy]:
    async with PartitionProxy(("127.0.0.1", echo.port)) as relay:
        yield relay


async def connect(proxy: PartitionProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def hang_up(*writers: asyncio.StreamWriter) -> None:
    for writer in writers:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def nothing_arrives(reader: asyncio.StreamReader) -> bool:
    """No byte, no end of stream and no error within ``SILENCE_S``: the peer has gone silent."""
    try:
        await asyncio.wait_for(reader.read(1), SILENCE_S)
    except TimeoutError:
        return True
    return False


async def test_relays_both_ways_while_healthy(proxy: PartitionProxy, echo: EchoServer) -> None:
    reader, writer = await connect(proxy)
    writer.write(b"ping")
    assert await reader.readexactly(9) == b"echo:ping"
    assert proxy.cut_now is None
    await hang_up(writer)


async def test_a_cut_holds_every_byte_and_refuses_nothing(
    proxy: PartitionProxy, echo: EchoServer
) -> None:
    reader, writer = await connect(proxy)
    writer.write(b"one")
    assert await reader.readexactly(8) == b"echo:one"

    proxy.cut()
    writer.write(b"two")
    await writer.drain()  # the write succeeds: nothing tells the sender
    assert await nothing_arrives(reader)
    assert bytes(echo.received) == b"one"
    # A new connection is accepted but reaches nobody.
    late_reader, late_writer = await connect(proxy)
    late_writer.write(b"new")
    assert await nothing_arrives(late_reader)
    assert echo.connections == 1
    assert proxy.stats.accepted_while_cut == 1

    proxy.heal()
    assert await reader.readexactly(8) == b"echo:two"
    assert await late_reader.readexactly(8) == b"echo:new"
    assert echo.connections == 2
    # The late connection's bytes waited in the kernel, not in the proxy.
    assert proxy.stats.held_bytes["to_server"] == 3
    await hang_up(writer, late_writer)


async def test_a_one_way_cut_lets_requests_pass_and_holds_the_answers(
    proxy: PartitionProxy, echo: EchoServer
) -> None:
    reader, writer = await connect(proxy)
    proxy.cut("to_client")
    writer.write(b"order")
    await wait_until(lambda: bytes(echo.received) == b"order", timeout_s=10)
    assert bytes(echo.received) == b"order"  # served...
    assert await nothing_arrives(reader)  # ...and the answer vanished
    proxy.heal()
    assert await reader.readexactly(10) == b"echo:order"
    await hang_up(writer)


async def test_a_client_that_gives_up_during_a_cut_is_not_seen_to(
    proxy: PartitionProxy, echo: EchoServer
) -> None:
    _reader, writer = await connect(proxy)
    writer.write(b"x")
    await wait_until(lambda: bytes(echo.received) == b"x", timeout_s=10)
    proxy.cut()
    await hang_up(writer)
    await asyncio.sleep(SILENCE_S)
    assert echo.closed_by_client == 0
    proxy.heal()
    assert await wait_until(lambda: echo.closed_by_client == 1, timeout_s=10)


async def test_heal_with_drop_resets_what_was_held(proxy: PartitionProxy, echo: EchoServer) -> None:
    reader, writer = await connect(proxy)
    writer.write(b"a")
    assert await reader.readexactly(6) == b"echo:a"
    idle_reader, idle_writer = await connect(proxy)
    idle_writer.write(b"b")
    assert await idle_reader.readexactly(6) == b"echo:b"
    proxy.cut()
    writer.write(b"lost")
    await writer.drain()
    await wait_until(lambda: proxy.stats.held_bytes["to_server"] == 4, timeout_s=10)
    proxy.heal(drop=True)
    # The connection that held bytes is reset; they never reach the server.
    with contextlib.suppress(ConnectionError):
        assert await reader.read() == b""
    assert proxy.stats.dropped_connections == 1
    assert b"lost" not in echo.received
    # The one with nothing held goes on as before.
    idle_writer.write(b"c")
    assert await idle_reader.readexactly(6) == b"echo:c"
    await hang_up(writer, idle_writer)


async def test_a_server_that_is_down_is_a_closed_connection_not_a_hang(
    echo: EchoServer,
) -> None:
    async with PartitionProxy(("127.0.0.1", 1)) as nowhere:
        reader, writer = await connect(nowhere)
        assert await reader.read() == b""
        await hang_up(writer)
