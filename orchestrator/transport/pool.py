"""A connection pool whose cost per request does not grow with its size.

httpcore's pool re-examines every pooled connection on each request and on
each response close, with a nested scan over idle connections, so a pool of
n connections costs O(n²) Python work per call. At 50 calls in flight to one
participant that work dominated the orchestrator's CPU and made a larger
pool slower than a small one. This pool keeps, per origin, a stack of idle
connections: a request pops one (checking only that one), a closed response
pushes it back, and a semaphore bounds the requests in flight. Everything
else — connections, HTTP/1.1, TLS, timeouts, exception mapping — is httpx's
and httpcore's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator

import httpcore
import httpx

_Key = tuple[bytes, bytes, int]


def _key(origin: httpcore.Origin) -> _Key:
    # httpcore's Origin compares by value but is not hashable.
    return (origin.scheme, origin.host, origin.port)


class StackConnectionPool(httpcore.AsyncConnectionPool):
    """At most ``max_connections`` requests in flight; idle connections reused newest first."""

    def __init__(self, max_connections: int, keepalive_expiry: float = 5.0) -> None:
        super().__init__(
            ssl_context=httpx.create_ssl_context(),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=keepalive_expiry,
        )
        self._capacity = max_connections
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: dict[_Key, list[httpcore.AsyncConnectionInterface]] = {}
        self._busy: set[httpcore.AsyncConnectionInterface] = set()

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        origin = request.url.origin
        await self._slots.acquire()
        connection: httpcore.AsyncConnectionInterface | None = None
        try:
            connection = await self._checkout(origin)
            self._busy.add(connection)
            response = await connection.handle_async_request(request)
        except BaseException:
            # Cancelled or failed mid-request: the connection's state is
            # unknown, so it is not reused.
            try:
                if connection is not None:
                    self._busy.discard(connection)
                    await connection.aclose()
            finally:
                self._slots.release()
            raise
        assert isinstance(response.stream, AsyncIterable)
        return httpcore.Response(
            status=response.status,
            headers=response.headers,
            content=_ReturnedOnClose(self, origin, connection, response.stream),
            extensions=response.extensions,
        )

    async def _checkout(self, origin: httpcore.Origin) -> httpcore.AsyncConnectionInterface:
        idle = self._idle.get(_key(origin))
        while idle:
            connection = idle.pop()
            if connection.is_available() and not connection.has_expired():
                return connection
            await connection.aclose()
        return self.create_connection(origin)

    async def _checkin(
        self, origin: httpcore.Origin, connection: httpcore.AsyncConnectionInterface
    ) -> None:
        self._busy.discard(connection)
        try:
            idle = self._idle.setdefault(_key(origin), [])
            if connection.is_idle() and len(idle) < self._capacity:
                idle.append(connection)
            elif not connection.is_closed():
                await connection.aclose()
        finally:
            self._slots.release()

    @property
    def connections(self) -> list[httpcore.AsyncConnectionInterface]:
        return [*self._busy, *(c for idle in self._idle.values() for c in idle)]

    async def aclose(self) -> None:
        everything = self.connections
        self._idle.clear()
        self._busy.clear()
        for connection in everything:
            await connection.aclose()


class _ReturnedOnClose:
    """The response body; closing it hands the connection back to the pool, once."""

    def __init__(
        self,
        pool: StackConnectionPool,
        origin: httpcore.Origin,
        connection: httpcore.AsyncConnectionInterface,
        stream: AsyncIterable[bytes],
    ) -> None:
        self._pool = pool
        self._origin = origin
        self._connection = connection
        self._stream = stream
        self._returned = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        if self._returned:
            return
        self._returned = True
        try:
            closer = getattr(self._stream, "aclose", None)
            if closer is not None:
                await closer()
        finally:
            await self._pool._checkin(self._origin, self._connection)


class StackPoolTransport(httpx.AsyncHTTPTransport):
    """httpx's HTTP transport, on a :class:`StackConnectionPool`."""

    def __init__(self, max_connections: int) -> None:
        super().__init__()
        self._pool = StackConnectionPool(max_connections)
