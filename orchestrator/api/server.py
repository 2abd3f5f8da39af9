"""How the orchestrator is served: uvicorn, with slow-client protection.

uvicorn closes an *idle* keep-alive connection after ``timeout_keep_alive``,
but any byte received cancels that timer, and nothing bounds the time a client
takes to send a request head: a client trickling one header byte every few
seconds holds a connection (and a file descriptor) for ever, and a few thousand
of them exhaust the process (slowloris). :class:`HeadTimeoutProtocol` arms a
timer whenever the server waits for a request head (at connection, and when
the next request of a keep-alive connection starts arriving) and closes the
connection, with a 408, if the head is not complete in time.

Waiting happens on the event loop with one timer per connection, so hundreds
of such connections cost no worker and do not slow other requests.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from orchestrator.settings import Settings

log = logging.getLogger("orchestrator.server")

#: Longest request head (request line and headers) accepted; h11's default, stated.
MAX_HEAD_BYTES = 16 * 1024
#: Idle keep-alive connections are closed after this many seconds.
KEEP_ALIVE_S = 5


def _raw_error(status: int, reason: str, code: str, message: str) -> bytes:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


class HeadTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request head is late.

    ``head_timeout_s`` is set on a subclass by :func:`protocol_class`. Also
    answers malformed requests in the API's JSON error shape instead of
    uvicorn's plain text.
    """

    head_timeout_s: float = 5.0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _waiting_for_head(self) -> bool:
        # h11 leaves IDLE only once a whole request head has been parsed.
        return self.conn.their_state is h11.IDLE and not self.transport.is_closing()

    def _watch_head(self) -> None:
        # Called at connection and whenever bytes arrive: if a head is (still)
        # incomplete, its clock runs from the first of those moments. An idle
        # keep-alive connection is left to uvicorn's keep-alive timer.
        if not self._waiting_for_head():
            self._cancel_head_timer()
        elif self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._waiting_for_head():
            return
        if self.conn.our_state is h11.IDLE:
            self.transport.write(
                _raw_error(
                    408,
                    "Request Timeout",
                    "request_timeout",
                    f"the request head was not received within {self.head_timeout_s:g}s",
                )
            )
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        body = json.dumps({"error": {"code": "bad_request", "message": msg}}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        try:
            output = self.conn.send(
                h11.Response(status_code=400, headers=headers, reason=b"Bad Request")
            )
            output += self.conn.send(h11.Data(data=body)) or b""
            output += self.conn.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError:
            output = None  # a response had already started: all we can do is close
        if output:
            self.transport.write(output)
        self.transport.close()


def protocol_class(head_timeout_s: float) -> type[HeadTimeoutProtocol]:
    """A :class:`HeadTimeoutProtocol` with ``head_timeout_s`` (uvicorn takes a class)."""
    return type(
        "HeadTimeoutProtocol", (HeadTimeoutProtocol,), {"head_timeout_s": float(head_timeout_s)}
    )


def server_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run``/``uvicorn.Config`` that protect the server."""
    return {
        "http": protocol_class(settings.head_timeout_s),
        "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
        "timeout_keep_alive": KEEP_ALIVE_S,
    }
