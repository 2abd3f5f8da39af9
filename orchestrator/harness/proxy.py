"""A TCP proxy on loopback that can cut the link it carries, the way a partition does.

A partition is not a refusal: nothing answers "connection refused" or resets
anything, the packets simply stop arriving. A :class:`PartitionProxy` stands
between a client and a server (a worker and PostgreSQL, a worker and a
participant) and, while it is cut:

- keeps every connection open, and lets no byte through in the cut
  direction: what the sender writes is held by the proxy (and, once its
  buffers are full, by the sender's kernel), so the sender sees a peer that
  has gone silent, never an error;
- still accepts new connections (the kernel does that for it), but opens
  nothing to the server until the way there heals, so they get nothing;
- holds an end of stream like any other byte: a client that gives up and
  closes is not seen to do so on the other side.

A cut is both ways or one way: ``to_server`` only (requests vanish) or
``to_client`` only (requests pass and are served, answers vanish). On
:meth:`~PartitionProxy.heal` the held bytes are delivered in order, as TCP's
retransmissions would once the network is back; ``heal(drop=True)`` instead
resets every connection that had bytes held, as when the peers' TCP gave up
during the partition.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

Direction = Literal["to_server", "to_client"]
Cut = Literal["both", "to_server", "to_client"]
DIRECTIONS: tuple[Direction, Direction] = ("to_server", "to_client")
_CHUNK = 65536


@dataclass(eq=False)
class _Link:
    """One client connection and, once the way to the server is open, its server side."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter | None = None
    #: A byte (or the end of stream) was held here by a cut not yet healed.
    holding: bool = False

    def abort(self) -> None:
        for writer in (self.client, self.server):
            if writer is not None:
                writer.transport.abort()


@dataclass
class ProxyStats:
    """What went through (or was held by) a proxy since it started."""

    connections: int = 0
    #: Connections accepted while the way to the server was cut.
    accepted_while_cut: int = 0
    #: Bytes held by a cut, by direction (delivered or dropped at the heal).
    held_bytes: Counter[str] = field(default_factory=Counter)
    #: Connections reset at a heal with ``drop=True``.
    dropped_connections: int = 0


class PartitionProxy:
    """A relay from ``127.0.0.1:<port>`` to ``target`` that can be cut and healed.

    Use as ``async with PartitionProxy(("127.0.0.1", 5432)) as proxy:`` and
    point the client at ``proxy.port``.
    """

    def __init__(self, target: tuple[str, int], *, name: str = "proxy") -> None:
        self.target = target
        self.name = name
        self.stats = ProxyStats()
        self._open = {d: asyncio.Event() for d in DIRECTIONS}
        for gate in self._open.values():
            gate.set()
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._closing = False

    async def __aenter__(self) -> PartitionProxy:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    @property
    def port(self) -> int:
        """The port clients connect to."""
        assert self._server is not None, "start() first"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def cut_now(self) -> Cut | None:
        """The cut in force, if any."""
        closed = [d for d in DIRECTIONS if not self._open[d].is_set()]
        if len(closed) == 2:
            return "both"
        return closed[0] if closed else None

    def cut(self, how: Cut = "both") -> None:
        """Stop every byte in ``how``'s direction(s) from now on (until :meth:`heal`)."""
        for direction in DIRECTIONS if how == "both" else (how,):
            self._open[direction].clear()

    def heal(self, *, drop: bool = False) -> None:
        """Let bytes through again: the held ones first, or (``drop``) reset their connections."""
        if drop:
            for link in [link for link in self._links if link.holding]:
                link.abort()
                self.stats.dropped_connections += 1
        for link in self._links:
            link.holding = False
        for gate in self._open.values():
            gate.set()

    async def close(self) -> None:
        """Stop listening and reset every connection."""
        # The connection tasks are let to end rather than cancelled: a cancelled
        # one makes asyncio (3.11) log an error for it.
        self._closing = True
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.abort()
        for gate in self._open.values():
            gate.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        link = _Link(writer)
        self._links.add(link)
        self.stats.connections += 1
        try:
            if not self._open["to_server"].is_set():
                self.stats.accepted_while_cut += 1
                link.holding = True
            # The server hears of a connection only once the way to it is open.
            await self._open["to_server"].wait()
            if self._closing:
                return
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            link.server = up_writer
            await asyncio.gather(
                self._pump(reader, up_writer, "to_server", link),
                self._pump(up_reader, writer, "to_client", link),
            )
        except OSError:
            pass  # the server refused or the link was reset: the client sees it close
        finally:
            link.abort()
            self._links.discard(link)
            self._tasks.discard(task)

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        direction: Direction,
        link: _Link,
    ) -> None:
        gate = self._open[direction]
        try:
            while True:
                data = await source.read(_CHUNK)
                if not gate.is_set():
                    link.holding = True
                    self.stats.held_bytes[direction] += len(data)
                    await gate.wait()
                if self._closing:
                    return
                if not data:
                    if sink.can_write_eof():
                        sink.write_eof()
                    return
                sink.write(data)
                await sink.drain()
        except OSError:
            # One side is gone: so is the other (the finally of _accept resets both).
            link.abort()
