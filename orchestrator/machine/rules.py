"""The rules the transitions and the queries share, each stated once.

Every function here is a pure question about ``(plan, state[, now])``; none
changes anything, so a rule reads the same wherever it is applied.
"""

from __future__ import annotations

from datetime import datetime

from orchestrator.machine.state import (
    Phase,
    Plan,
    SagaState,
    SagaStatus,
    StepKind,
    StepState,
    StepStatus,
)

S, T = SagaStatus, StepStatus

#: The message of the error a saga compensates with once its deadline passed.
DEADLINE_PASSED = "deadline passed"

#: The step status that waits for a call in each phase.
CALLED_IN: dict[Phase, StepStatus] = {Phase.ACTION: T.RUNNING, Phase.COMPENSATION: T.COMPENSATING}

#: The phase an active saga works in; other statuses make no calls.
WORKING_PHASE: dict[SagaStatus, Phase] = {
    S.RUNNING: Phase.ACTION,
    S.COMPENSATING: Phase.COMPENSATION,
}


def members(plan: Plan, state: SagaState) -> tuple[int, ...]:
    """The step indexes of the stage the saga is working on."""
    return plan.stages[state.stage]


def attempts_in(step: StepState, phase: Phase) -> int:
    """The attempts of ``phase`` made or in flight: the number the current call carries."""
    return step.attempts if phase is Phase.ACTION else step.compensation_attempts


def is_current(plan: Plan, state: SagaState, step: int, phase: Phase, attempt: int) -> bool:
    """Whether an answer to ``attempt`` of ``phase`` is the one the step waits on.

    Anything else is a late or repeated answer, which changes nothing.
    """
    current = state.steps[step]
    return (
        step in members(plan, state)
        and current.status is CALLED_IN[phase]
        and attempt == attempts_in(current, phase)
    )


def budget_left(plan: Plan, state: SagaState, index: int, phase: Phase) -> bool:
    """Whether step ``index`` may try ``phase`` once more after a transient failure."""
    step, policy = state.steps[index], plan.steps[index]
    if phase is Phase.ACTION and policy.kind is StepKind.RETRIABLE:
        return True  # after the pivot there is no way back: retry until it succeeds
    return attempts_in(step, phase) - step.budget_from < policy.retry.max_attempts


def callback_overdue(step: StepState, now: datetime) -> bool:
    """Whether a step that accepted its call (202) waited for its completion too long."""
    return step.awaiting_callback and step.due_at is not None and step.due_at <= now


def pivot_in_flight(plan: Plan, state: SagaState) -> bool:
    """Whether the pivot is being called: its outcome, not a request, decides what follows."""
    return any(
        plan.steps[i].kind is StepKind.PIVOT and state.steps[i].status is T.RUNNING
        for i in members(plan, state)
    )


def is_unknown_pivot(plan: Plan, state: SagaState, index: int) -> bool:
    """Whether step ``index`` is a pivot that gave up without a definite answer.

    The point of no return may or may not have been passed: only a retry with
    the same idempotency key can tell, so neither side may be assumed.
    """
    return plan.steps[index].kind is StepKind.PIVOT and state.steps[index].status is T.FAILED


def pivot_outcome_unknown(plan: Plan, state: SagaState) -> bool:
    """Whether the current stage holds a pivot whose outcome is unknown."""
    return any(is_unknown_pivot(plan, state, i) for i in members(plan, state))


def deadline_can_act(plan: Plan, state: SagaState) -> bool:
    """Whether passing the deadline would turn the saga back.

    Only a running saga before its pivot can still be undone, and not while the
    pivot is in flight (its outcome decides).
    """
    return (
        state.status is S.RUNNING
        and state.deadline_at is not None
        and not state.pivoted
        and not pivot_in_flight(plan, state)
    )


def deadline_passed(plan: Plan, state: SagaState, now: datetime) -> bool:
    """Whether the saga must compensate now because its deadline passed."""
    return (
        deadline_can_act(plan, state) and state.deadline_at is not None and now >= state.deadline_at
    )


def needs_compensation(plan: Plan, state: SagaState, index: int) -> bool:
    """Whether step ``index`` may have taken effect and has a compensation to undo it.

    A step rejected at once did nothing; one rejected after an attempt without a
    definite answer might have, through that earlier attempt.
    """
    if not plan.steps[index].has_compensation:
        return False
    step = state.steps[index]
    return step.status in (T.SUCCEEDED, T.FAILED, T.RUNNING) or (
        step.status is T.REJECTED and step.uncertain
    )
