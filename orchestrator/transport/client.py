"""Calls to participants over HTTP: timeouts, failover, faults (headers: ``protocol``)."""

from __future__ import annotations

import asyncio
import http.cookiejar
import time
from functools import partial
from typing import Any

import httpx

from orchestrator import json_codec
from orchestrator.machine import OutcomeKind
from orchestrator.transport import protocol
from orchestrator.transport.call import NOT_SENT, CallbackTokens, CallRequest
from orchestrator.transport.faults import FaultPicker, InjectedFault, send_with_fault
from orchestrator.transport.outcome import CallResult, call_result, classify_response
from orchestrator.transport.pool import StackPoolTransport
from orchestrator.transport.routing import Routing


class _NoCookies(http.cookiejar.CookieJar):
    """A cookie jar that keeps nothing.

    A participant's ``Set-Cookie`` must not ride along on other sagas' calls
    (the client is shared by every saga), and parsing it on every answer was a
    measurable share of a call's CPU.
    """

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None

    def add_cookie_header(self, request: Any) -> None:
        return None


class ParticipantClient:
    """One shared HTTP client for every participant call of a process (a ``Transport``).

    ``faults`` picks the fault rule of a call (none: no injection at all);
    ``callbacks`` issues the tokens of callback steps, completed under
    ``public_url``.
    """

    def __init__(
        self,
        routing: Routing,
        faults: FaultPicker | None = None,
        max_response_bytes: int = 1_048_576,
        connections_per_participant: int = 100,
        *,
        callbacks: CallbackTokens | None = None,
        public_url: str = "http://127.0.0.1:8000",
    ) -> None:
        self.routing = routing
        self.faults = faults
        self.callbacks = callbacks
        self.public_url = public_url
        self.max_response_bytes = max_response_bytes
        self.connections_per_participant = connections_per_participant
        self._clients: dict[str, httpx.AsyncClient] = {}

    def _client(self, participant: str) -> httpx.AsyncClient:
        # One pool per participant, so that one slow participant cannot take
        # every connection from the others. Calls beyond the limit queue
        # (their timeout runs while they wait).
        client = self._clients.get(participant)
        if client is None:
            client = httpx.AsyncClient(
                transport=StackPoolTransport(self.connections_per_participant),
                follow_redirects=False,
                cookies=_NoCookies(),
            )
            self._clients[participant] = client
        return client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def call(self, request: CallRequest) -> CallResult:
        """Make one attempt; never raises for anything the participant or network does."""
        started = time.perf_counter()
        fault = await self.faults.pick(request.identity) if self.faults is not None else None
        if request.still_held is not None and not request.still_held():
            return call_result(started, OutcomeKind.TRANSIENT, None, None, error=NOT_SENT)
        content = json_codec.dumps(request.body)
        headers = protocol.headers(
            request, protocol.callback_for(request, self.callbacks, self.public_url)
        )
        url: str | None = None
        try:
            async with asyncio.timeout(request.timeout_s):
                for url in self.routing.candidates(request.identity.participant):
                    try:
                        status, body = await send_with_fault(
                            fault,
                            partial(self._send, url + request.path, content, headers, request),
                            request.timeout_s,
                        )
                        break
                    except httpx.ConnectError:
                        # Nothing was sent: the next base URL may take it.
                        continue
                else:
                    raise httpx.ConnectError("no base URL of the participant accepted a connection")
        except (TimeoutError, httpx.TimeoutException):
            return call_result(
                started,
                OutcomeKind.TRANSIENT,
                url,
                fault,
                error=f"timed out after {request.timeout_s * 1000:.0f} ms",
            )
        except _TooLarge:
            return call_result(
                started,
                OutcomeKind.TRANSIENT,
                url,
                fault,
                error=f"response larger than {self.max_response_bytes} bytes",
            )
        except (httpx.HTTPError, InjectedFault) as exc:
            return call_result(
                started, OutcomeKind.TRANSIENT, url, fault, error=f"{type(exc).__name__}: {exc}"
            )
        kind, result, error = classify_response(status, body)
        return call_result(started, kind, url, fault, status=status, result=result, error=error)

    async def _send(
        self,
        url: str,
        content: bytes,
        headers: dict[str, str],
        request: CallRequest,
    ) -> tuple[int, bytes]:
        http = self._client(request.identity.participant)
        http_request = http.build_request(
            "POST",
            url,
            content=content,
            headers=headers,
            timeout=request.timeout_s,
        )
        response = await http.send(http_request, stream=True)
        try:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self.max_response_bytes:
                    raise _TooLarge
                chunks.append(chunk)
        finally:
            await response.aclose()
        return response.status_code, b"".join(chunks)


class _TooLarge(Exception):
    pass
