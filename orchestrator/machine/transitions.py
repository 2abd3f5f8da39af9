"""Every saga transition, decided by pure functions.

Theory of operation
-------------------
A saga follows a :class:`Plan`: stages of steps run in order, the members of a
stage concurrently. The state says, for each step, where it stands; the calls
that are due follow from the state alone (``due_calls``), so a worker that
crashes loses nothing: whoever loads the state next makes the same calls again,
with the same idempotency keys.

Forward: entering a stage marks its members ``running`` with attempt 1 due now.
A success is recorded; when every member succeeded the next stage begins, and
after the last one the saga is ``completed``. A rejection (a definite business
"no") or a transient failure that exhausts the retry budget fails the step for
good. Then, before the pivot, the saga compensates (or parks, if the definition
says ``on_failure: park``); after the pivot, or at a pivot whose outcome is
unknown, it can only park (``failed``) for an operator.

Backward: compensation walks the stages in reverse, from the one that failed,
compensating every member that may have taken effect: succeeded, failed with an
unknown outcome, still running, or rejected after an earlier attempt that had no
definite answer. A compensation that is refused or exhausts its budget parks the
saga (``failed``), visibly; an operator's retry resumes it with a fresh budget.

Rules: no I/O and no clock (``now`` is passed in); ``apply`` never raises for a
valid event; an outcome that no longer matches the state (a late or repeated
answer) changes nothing; every status change is checked against the tables in
``tables``, from which the docs' diagrams are rendered.

Where each part lives
---------------------
``rules`` states each rule once, as a pure question about the state;
``change`` builds the next state through the tables; ``forward`` and
``backward`` go forward and compensate; ``requests`` holds the refusal tables
of the operator's requests; ``queries`` answers which calls are due and when to
wake; this module dispatches each event to its handler.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from orchestrator.machine.backward import on_compensation_outcome
from orchestrator.machine.change import Refusal
from orchestrator.machine.events import (
    CallbackCompleted,
    CallOutcome,
    CancelRequested,
    CompensateRequested,
    Event,
    RetryRequested,
    Tick,
)
from orchestrator.machine.forward import (
    enforce_deadline,
    enter_stage,
    expire_callbacks,
    on_action_outcome,
    on_callback,
)
from orchestrator.machine.requests import on_request
from orchestrator.machine.state import Phase, Plan, SagaState, StepState
from orchestrator.machine.tables import SAGA_INITIAL


@dataclass(frozen=True)
class Decision:
    """The state after an event; ``reason`` says why an event was not taken."""

    state: SagaState
    accepted: bool = True
    reason: str | None = None


def start(plan: Plan, now: datetime) -> SagaState:
    """The state of a new saga: its first stage running, attempt 1 due now."""
    deadline = now + timedelta(seconds=plan.deadline_s) if plan.deadline_s is not None else None
    initial = SagaState(
        status=SAGA_INITIAL,
        steps=tuple(StepState() for _ in plan.steps),
        deadline_at=deadline,
    )
    return enter_stage(plan, initial, 0, now)


def _on_call_outcome(
    plan: Plan, state: SagaState, outcome: CallOutcome, now: datetime, key: str
) -> SagaState | Refusal:
    if outcome.phase is Phase.ACTION:
        return on_action_outcome(plan, state, outcome, now, key)
    return on_compensation_outcome(plan, state, outcome, now, key)


def _on_tick(plan: Plan, state: SagaState, tick: Tick, now: datetime, key: str) -> SagaState:
    return state  # what time alone changes is done for every event, in ``apply``


#: A handler takes the event of its row's type; a dict cannot say so, hence ``Any``.
Handler = Callable[[Plan, SagaState, Any, datetime, str], SagaState | Refusal]

#: Which handler each event goes to.
HANDLERS: dict[type[Event], Handler] = {
    CallOutcome: _on_call_outcome,
    CallbackCompleted: on_callback,
    CancelRequested: on_request,
    RetryRequested: on_request,
    CompensateRequested: on_request,
    Tick: _on_tick,
}


def apply(plan: Plan, state: SagaState, event: Event, now: datetime, key: str = "") -> Decision:
    """Fold one event into the state. ``key`` (the saga id) seeds retry jitter.

    Store the returned state even when ``accepted`` is false: time has passed
    (an expired callback, the deadline) whatever became of the event.
    """
    # Time passes before the event: a completion that arrives after its step's
    # timeout finds the step already failed, whatever else happened meanwhile.
    before = expire_callbacks(plan, state, now)
    handled = HANDLERS[type(event)](plan, before, event, now, key)
    after, reason = (before, handled.reason) if isinstance(handled, Refusal) else (handled, None)
    after = enforce_deadline(plan, expire_callbacks(plan, after, now), now)
    return Decision(after, accepted=reason is None, reason=reason)
