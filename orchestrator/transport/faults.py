"""Transport-level fault injection: apply the rule picked for a call, whatever carries it.

Which rule fires for a call (if any) is not the transport's business: a
:class:`FaultPicker` handed in by the composition root decides, and each
transport hands :func:`send_with_fault` the one function that sends its call
and reads the answer. Every transport thus fails the same way for the same
rule: HTTP and the broker are indistinguishable to the campaign that checks
them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from orchestrator import json_codec
from orchestrator.fault_rules import FaultRule
from orchestrator.transport.call import CallIdentity

#: What a participant answered: ``(status with HTTP's meaning, body)``.
Answer = tuple[int, bytes]

INJECTED_ERROR_BODY = json_codec.dumps(
    {"error": {"code": "injected_fault", "message": "error injected by a fault rule"}}
)


class InjectedFault(Exception):
    """A failure made on purpose by a fault rule (the call's outcome is transient)."""


class FaultPicker(Protocol):
    """Decides which fault rule, if any, fires for a call."""

    async def pick(self, call: CallIdentity) -> FaultRule | None:
        """The rule to apply to this attempt, already counted; never raises."""
        ...


async def send_with_fault(
    rule: FaultRule | None, send: Callable[[], Awaitable[Answer]], timeout_s: float
) -> Answer:
    """Send through ``send`` as ``rule`` says (``None``: just send).

    ``error`` answers without sending; ``timeout`` sends nothing and waits out
    the attempt (the caller's own deadline ends it first); ``drop_request``
    sends nothing; ``delay`` waits, then sends; ``drop_response`` sends, lets
    the participant answer, and loses the answer.
    """
    if rule is None:
        return await send()
    if rule.mode == "error":
        return rule.status or 503, INJECTED_ERROR_BODY
    if rule.mode == "timeout":
        await asyncio.sleep(timeout_s)
        raise TimeoutError("timed out (injected by a fault rule)")
    if rule.mode == "drop_request":
        raise InjectedFault("request dropped by a fault rule")
    if rule.mode == "delay":
        await asyncio.sleep((rule.delay_ms or 0) / 1000)
        return await send()
    await send()
    raise InjectedFault("response dropped by a fault rule")
