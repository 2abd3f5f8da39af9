"""Transport-level fault injection: apply the rule picked for a call, as an httpx transport.

Which rule fires for a call (if any) is not the transport's business: a
:class:`FaultPicker` handed in by the composition root decides, and the
transport applies what it is given.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import httpx

from orchestrator.fault_rules import FaultRule
from orchestrator.transport.call import CallIdentity


class InjectedFault(httpx.TransportError):
    """A failure made on purpose by a fault rule."""


class FaultPicker(Protocol):
    """Decides which fault rule, if any, fires for a call."""

    async def pick(self, call: CallIdentity) -> FaultRule | None:
        """The rule to apply to this attempt, already counted; never raises."""
        ...


class FaultTransport(httpx.AsyncBaseTransport):
    """Wraps the real transport; applies the rule put in ``request.extensions["fault"]``."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        rule: FaultRule | None = request.extensions.get("fault")
        if rule is None:
            return await self.inner.handle_async_request(request)
        if rule.mode == "error":
            return httpx.Response(
                rule.status or 503,
                json={
                    "error": {"code": "injected_fault", "message": "error injected by a fault rule"}
                },
            )
        if rule.mode == "timeout":
            timeout = request.extensions.get("timeout", {}).get("read") or 5.0
            await asyncio.sleep(timeout)
            raise httpx.ReadTimeout("timed out (injected by a fault rule)", request=request)
        if rule.mode == "drop_request":
            raise InjectedFault("request dropped by a fault rule", request=request)
        if rule.mode == "delay":
            await asyncio.sleep((rule.delay_ms or 0) / 1000)
            return await self.inner.handle_async_request(request)
        # drop_response: the participant gets the request and answers; we lose the answer.
        response = await self.inner.handle_async_request(request)
        await response.aread()
        await response.aclose()
        raise InjectedFault("response dropped by a fault rule", request=request)

    async def aclose(self) -> None:
        await self.inner.aclose()
