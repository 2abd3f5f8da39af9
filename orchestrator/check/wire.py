"""The wire tap: loopback HTTP relays between each worker and each participant.

A worker is configured with the relay's address instead of the participant's,
and every byte goes through unchanged, so the participant sees exactly what
the worker sent. What the tap adds is a witness the orchestrator does not
control:

- every request's ``Idempotency-Key``, saga, step and attempt (the proof that
  all retries of a call carried the same key), and the participant's answer;
- which requests of a worker are in flight right now: sent, not yet answered
  (how many calls a kill or a pause cut off);
- answers that arrived after their worker was gone.

Each worker slot gets its own listeners, so a call is always attributed to the
worker that made it. One upstream connection per downstream connection keeps
HTTP/1.1's one-request-at-a-time order; bodies are framed by
``Content-Length`` or chunked encoding.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlsplit

from orchestrator.check.evidence import WireCall


@dataclass(frozen=True)
class _Message:
    start: str
    headers: dict[str, str]
    raw: bytes

    @property
    def closes(self) -> bool:
        return self.headers.get("connection", "").lower() == "close"


class _Closed(Exception):
    """The peer closed the connection between two messages."""


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        line = await reader.readuntil(b"\r\n")
        parts.append(line)
        size = int(line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while True:  # trailers, up to the empty line
                trailer = await reader.readuntil(b"\r\n")
                parts.append(trailer)
                if trailer == b"\r\n":
                    return b"".join(parts)
        parts.append(await reader.readexactly(size + 2))


async def read_message(reader: asyncio.StreamReader, *, response_to: str | None = None) -> _Message:
    """One HTTP/1.1 message; raises :class:`_Closed` at a clean end of stream."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise _Closed from None
        raise
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif response_to is not None and response_to != "HEAD" and not _bodiless(lines[0]):
        body = await reader.read()  # framed by the end of the connection
        headers["connection"] = "close"
    else:
        body = b""
    return _Message(lines[0], headers, head + body)


def _bodiless(status_line: str) -> bool:
    parts = status_line.split(" ", 2)
    return len(parts) > 1 and (parts[1].startswith("1") or parts[1] in ("204", "304"))


class WireTap:
    """Relays for every (worker, participant) pair, and what went through them."""

    def __init__(self, participants: dict[str, str]) -> None:
        #: Participant name -> its real base URL.
        self.participants = participants
        self.calls: list[WireCall] = []
        self._in_flight: Counter[str] = Counter()
        #: Requests each worker has sent so far (answered or not).
        self.sent: Counter[str] = Counter()
        self._servers: dict[str, list[asyncio.Server]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def open(self, worker: str) -> dict[str, list[str]]:
        """Listeners for ``worker`` (once per slot); returns its ``SAGA_PARTICIPANTS``."""
        routes: dict[str, list[str]] = {}
        servers: list[asyncio.Server] = []
        for name, url in sorted(self.participants.items()):
            target = urlsplit(url)
            host, port = target.hostname or "127.0.0.1", target.port or 80

            async def relay(
                reader: asyncio.StreamReader,
                writer: asyncio.StreamWriter,
                participant: str = name,
                upstream: tuple[str, int] = (host, port),
            ) -> None:
                task = asyncio.current_task()
                if task is not None:
                    self._tasks.add(task)
                try:
                    await self._relay(worker, participant, upstream, reader, writer)
                finally:
                    if task is not None:
                        self._tasks.discard(task)

            server = await asyncio.start_server(relay, "127.0.0.1", 0)
            servers.append(server)
            routes[name] = [f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"]
        self._servers[worker] = servers
        return routes

    def in_flight(self, worker: str | None = None) -> int:
        """Requests sent by ``worker`` (or anyone) the participant has not answered yet."""
        if worker is None:
            return sum(self._in_flight.values())
        return self._in_flight[worker]

    async def close(self) -> None:
        """Stop listening and drop every relayed connection."""
        for servers in self._servers.values():
            for server in servers:
                server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for servers in self._servers.values():
            for server in servers:
                await server.wait_closed()

    async def _relay(
        self,
        worker: str,
        participant: str,
        upstream: tuple[str, int],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        up_reader: asyncio.StreamReader | None = None
        up_writer: asyncio.StreamWriter | None = None
        try:
            while True:
                request = await read_message(reader)
                if up_writer is None or up_reader is None:
                    up_reader, up_writer = await asyncio.open_connection(*upstream)
                method, path = [*request.start.split(" "), "", ""][:2]
                self._in_flight[worker] += 1
                self.sent[worker] += 1
                try:
                    up_writer.write(request.raw)
                    await up_writer.drain()
                    response: _Message | None = await read_message(up_reader, response_to=method)
                except (_Closed, ConnectionError, asyncio.IncompleteReadError):
                    response = None
                finally:
                    self._in_flight[worker] -= 1
                lost = response is not None and not await _forward(reader, writer, response)
                self.calls.append(
                    _record(worker, participant, method, path, request, response, lost)
                )
                if response is None or lost or response.closes or request.closes:
                    return
        except (
            _Closed,
            ConnectionError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ValueError,
        ):
            return
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    w.close()
            # Until each socket is really closed: a close only schedules it, and a loop
            # that ends first leaves the socket to the garbage collector, unclosed.
            for w in (writer, up_writer):
                if w is not None:
                    with contextlib.suppress(Exception):
                        await w.wait_closed()


async def _forward(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, response: _Message
) -> bool:
    # A worker that died or hung up has closed its end (FIN: end of stream; RST:
    # the transport is closing); a write would still succeed into the kernel.
    if reader.at_eof() or writer.is_closing():
        return False
    try:
        writer.write(response.raw)
        await writer.drain()
    except ConnectionError:
        return False
    return True


def _record(
    worker: str,
    participant: str,
    method: str,
    path: str,
    request: _Message,
    response: _Message | None,
    lost: bool,
) -> WireCall:
    attempt = request.headers.get("x-saga-attempt", "")
    status: int | None = None
    if response is not None:
        with contextlib.suppress(IndexError, ValueError):
            status = int(response.start.split(" ")[1])
    return WireCall(
        worker=worker,
        participant=participant,
        method=method,
        path=path.split("?", 1)[0],
        key=request.headers.get("idempotency-key"),
        saga_id=request.headers.get("x-saga-id"),
        step=request.headers.get("x-saga-step"),
        attempt=int(attempt) if attempt.isdigit() else None,
        status=status,
        answer_lost=lost,
    )
