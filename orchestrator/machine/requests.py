"""Requests from outside (cancel, retry, compensate): when each is refused, and what it does.

A refused request changes nothing and its reason becomes the API's 409. The
refusals are tables: first by saga status, then, for a status that allows the
request, the conditions checked in order (the first that holds wins).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from orchestrator.machine.backward import begin_compensation
from orchestrator.machine.change import Refusal, rearm, with_status, with_step
from orchestrator.machine.events import CancelRequested, CompensateRequested, RetryRequested
from orchestrator.machine.rules import members, pivot_in_flight, pivot_outcome_unknown
from orchestrator.machine.state import Phase, Plan, SagaError, SagaState, SagaStatus, StepStatus

S, T = SagaStatus, StepStatus

Request = CancelRequested | RetryRequested | CompensateRequested

_PAST_PIVOT = "the saga is past its pivot step and can only go forward"
_NOT_PARKED_FORWARD = "only a saga parked at a forward step can be compensated"

#: The statuses that refuse each request, and why; a status not listed allows it.
REFUSED_IN_STATUS: dict[type[Request], dict[SagaStatus, str]] = {
    CancelRequested: {
        S.COMPENSATING: "the saga is compensating, not running",
        S.COMPLETED: "the saga is completed, not running",
        S.COMPENSATED: "the saga is compensated, not running",
        S.FAILED: "the saga is failed, not running",
    },
    RetryRequested: {
        S.RUNNING: "only a failed saga can be retried; this one is running",
        S.COMPENSATING: "only a failed saga can be retried; this one is compensating",
        S.COMPLETED: "only a failed saga can be retried; this one is completed",
        S.COMPENSATED: "only a failed saga can be retried; this one is compensated",
    },
    CompensateRequested: {
        S.RUNNING: _NOT_PARKED_FORWARD,
        S.COMPENSATING: _NOT_PARKED_FORWARD,
        S.COMPLETED: _NOT_PARKED_FORWARD,
        S.COMPENSATED: _NOT_PARKED_FORWARD,
    },
}


def _pivoted(plan: Plan, state: SagaState) -> bool:
    return state.pivoted


def _not_parked_forward(plan: Plan, state: SagaState) -> bool:
    return state.parked_phase is not Phase.ACTION


Condition = Callable[[Plan, SagaState], bool]

#: Further refusals of a request the status allows, checked in order.
REFUSED_WHEN: dict[type[Request], tuple[tuple[Condition, str], ...]] = {
    CancelRequested: (
        (_pivoted, _PAST_PIVOT),
        (pivot_in_flight, "the saga's pivot step is in progress; its outcome decides"),
    ),
    RetryRequested: (),
    CompensateRequested: (
        (_not_parked_forward, _NOT_PARKED_FORWARD),
        (_pivoted, _PAST_PIVOT),
        (pivot_outcome_unknown, "the pivot step's outcome is unknown; retry it to learn it"),
    ),
}


def refusal(plan: Plan, state: SagaState, request: Request) -> str | None:
    """Why ``request`` is refused in ``state``, or ``None`` when it is taken."""
    kind = type(request)
    by_status = REFUSED_IN_STATUS[kind].get(state.status)
    if by_status is not None:
        return by_status
    return next((reason for holds, reason in REFUSED_WHEN[kind] if holds(plan, state)), None)


def on_request(
    plan: Plan, state: SagaState, request: Request, now: datetime, key: str
) -> SagaState | Refusal:
    """Take ``request`` unless its tables refuse it."""
    reason = refusal(plan, state, request)
    if reason is not None:
        return Refusal(reason)
    match request:
        case CancelRequested(reason=why):
            error = SagaError(plan.steps[members(plan, state)[0]].name, Phase.ACTION, why)
            return begin_compensation(plan, replace(state, error=error), now)
        case CompensateRequested():
            return begin_compensation(plan, state, now)  # the parked error still explains it
        case RetryRequested():
            return _retry(plan, state, now)


def _retry(plan: Plan, state: SagaState, now: datetime) -> SagaState:
    """Resume the phase the saga parked in, with a fresh retry budget for what stopped it."""
    if state.parked_phase is Phase.COMPENSATION:
        state = with_status(state, S.COMPENSATING)
        for index in members(plan, state):
            step = state.steps[index]
            if step.status is T.COMPENSATION_FAILED:
                state = rearm(plan, state, index, Phase.COMPENSATION, now, finished_at=None)
    else:
        state = with_status(state, S.RUNNING)
        for index in members(plan, state):
            step = state.steps[index]
            if step.status in (T.REJECTED, T.FAILED):
                state = rearm(
                    plan, state, index, Phase.ACTION, now, finished_at=None, awaiting_callback=False
                )
            elif step.status is T.RUNNING and not step.awaiting_callback:
                # Its call was out when the saga parked: make it again now.
                state = with_step(plan, state, index, due_at=now)
    return replace(state, parked_phase=None, error=None)
