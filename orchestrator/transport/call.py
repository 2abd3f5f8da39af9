"""A participant call as the worker orders it, whatever transport carries it.

The worker decides *what* to call (identity, endpoint, body, deadline, whether
the step completes by callback); a transport decides *how* it travels (HTTP
headers today, a broker's message properties next). A transport is anything
with :class:`Transport`'s two methods; the composition root picks one and the
worker never names it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from orchestrator import tracing
from orchestrator.transport.outcome import CallResult


@dataclass(frozen=True)
class CallIdentity:
    """Which attempt of which half of which step of which saga a call is."""

    definition: str
    participant: str
    step: str
    phase: str
    saga_id: str
    attempt: int

    def scope(self) -> dict[str, str]:
        """The fields a fault rule can narrow itself to."""
        return {
            "definition": self.definition,
            "participant": self.participant,
            "step": self.step,
            "phase": self.phase,
        }


NOT_SENT = "not sent: the caller's hold on the saga ran out"
"""The error of a call the transport withheld because ``still_held()`` said no."""


@dataclass(frozen=True)
class CallRequest:
    """One attempt of one call, as the worker asks for it."""

    identity: CallIdentity
    #: The participant's endpoint for this half of the step, from the definition.
    path: str
    #: The rendered body (JSON-serialisable).
    body: Any
    timeout_s: float
    #: The saga's trace id; the call then carries a W3C ``traceparent`` of its own.
    trace_id: str | None = None
    #: The step completes later, by callback: the call carries how to complete it.
    awaits_callback: bool = False
    #: Asked right before the call goes out (after anything the transport waits
    #: for first): ``False`` and the call is not sent, its result is
    #: :data:`NOT_SENT`. The worker answers whether its lease still holds.
    still_held: Callable[[], bool] | None = field(default=None, compare=False)
    #: The ``traceparent`` sent with this attempt: drawn once, so that the span
    #: recorded for the call names the very span id the participant received.
    traceparent: str | None = field(init=False, default=None, compare=False)

    def __post_init__(self) -> None:
        if self.trace_id:
            object.__setattr__(self, "traceparent", tracing.traceparent(self.trace_id))


class CallbackTokens(Protocol):
    """Issues the token a participant completes a callback step with."""

    def token(self, call: CallIdentity) -> str:
        """The token for this attempt of the call's step."""
        ...


class Transport(Protocol):
    """What the worker needs of a transport: make an attempt, and close."""

    async def call(self, request: CallRequest) -> CallResult:
        """Make one attempt; never raises for anything the participant or network does."""
        ...

    async def aclose(self) -> None:
        """Release connections; no call is made afterwards."""
        ...
