"""What can happen to a saga: call outcomes and requests from outside."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from orchestrator.machine.state import JSON, Phase


class OutcomeKind(StrEnum):
    SUCCEEDED = "succeeded"
    #: A definite business "no": not retried.
    REJECTED = "rejected"
    #: No definite answer (5xx, 408, 429, timeout, connection error): retried.
    TRANSIENT = "transient"
    #: A callback step's participant took the call (202) and will report by callback.
    ACCEPTED = "accepted"


@dataclass(frozen=True)
class CallOutcome:
    """The outcome of one attempt of one call (``attempt`` as sent)."""

    step: int
    phase: Phase
    attempt: int
    kind: OutcomeKind
    result: JSON = None
    error: str | None = None


@dataclass(frozen=True)
class CallbackCompleted:
    """A participant's completion of a callback step (``kind`` succeeded or rejected)."""

    step: int
    attempt: int
    kind: OutcomeKind
    result: JSON = None
    error: str | None = None


@dataclass(frozen=True)
class Tick:
    """Time passed: lets the machine enforce the deadline."""


@dataclass(frozen=True)
class CancelRequested:
    reason: str = "cancelled"


@dataclass(frozen=True)
class RetryRequested:
    """An operator asks a ``failed`` saga to resume where it stopped."""


@dataclass(frozen=True)
class CompensateRequested:
    """An operator asks a ``failed`` saga parked before its pivot to compensate."""


Event = (
    CallOutcome | CallbackCompleted | Tick | CancelRequested | RetryRequested | CompensateRequested
)
