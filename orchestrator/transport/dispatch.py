"""One ``Transport`` for the worker, whichever carries each participant's calls.

A participant's addresses are all of one kind (settings refuse a mix): HTTP
base URLs or AMQP queue URLs. The worker hands every call here; this sends it
by the transport its participant's addresses name, so one saga can mix HTTP
and broker participants without the worker knowing.
"""

from __future__ import annotations

from orchestrator.transport.amqp import is_amqp
from orchestrator.transport.call import CallRequest, Transport
from orchestrator.transport.outcome import CallResult
from orchestrator.transport.routing import Routing


class TransportByAddress:
    """Sends each call over HTTP or the broker, as its participant's addresses say."""

    def __init__(self, routing: Routing, http: Transport, amqp: Transport | None = None) -> None:
        self.http = http
        self.amqp = amqp
        self._broker_participants = {
            name for name, urls in routing.participants.items() if urls and is_amqp(urls[0])
        }
        if self._broker_participants and amqp is None:
            raise ValueError("broker participants are configured but no broker transport is")

    async def call(self, request: CallRequest) -> CallResult:
        """Make one attempt through the participant's transport."""
        if request.identity.participant in self._broker_participants:
            assert self.amqp is not None
            return await self.amqp.call(request)
        return await self.http.call(request)

    async def aclose(self) -> None:
        """Close both transports."""
        await self.http.aclose()
        if self.amqp is not None:
            await self.amqp.aclose()
