"""Going forward: stages begin, actions are answered, failures are handled."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from orchestrator.machine.backward import begin_compensation
from orchestrator.machine.change import Refusal, park, rearm, retry_later, with_status, with_step
from orchestrator.machine.events import CallbackCompleted, CallOutcome, OutcomeKind
from orchestrator.machine.rules import (
    DEADLINE_PASSED,
    budget_left,
    callback_overdue,
    deadline_passed,
    is_current,
    is_unknown_pivot,
    members,
)
from orchestrator.machine.state import (
    Phase,
    Plan,
    SagaError,
    SagaState,
    SagaStatus,
    StepKind,
    StepStatus,
)

S, T = SagaStatus, StepStatus


def enter_stage(plan: Plan, state: SagaState, stage: int, now: datetime) -> SagaState:
    """Begin ``stage``: every member running, attempt 1 due now; past the last, completed."""
    if stage >= len(plan.stages):
        return with_status(state, S.COMPLETED)
    if deadline_passed(plan, state, now):
        # Too late to start anything new (above all the pivot): undo what was done.
        return compensate_for_deadline(plan, state, plan.stages[stage][0], now)
    state = replace(state, stage=stage)
    for index in plan.stages[stage]:
        state = rearm(plan, state, index, Phase.ACTION, now, started_at=now)
    return state


def compensate_for_deadline(plan: Plan, state: SagaState, blamed: int, now: datetime) -> SagaState:
    """Turn back because the deadline passed; the error names step ``blamed``."""
    error = SagaError(plan.steps[blamed].name, Phase.ACTION, DEADLINE_PASSED)
    return begin_compensation(plan, replace(state, error=error), now)


def enforce_deadline(plan: Plan, state: SagaState, now: datetime) -> SagaState:
    """Compensate if the deadline passed and the saga can still turn back."""
    if deadline_passed(plan, state, now):
        return compensate_for_deadline(plan, state, members(plan, state)[0], now)
    return state


def on_action_outcome(
    plan: Plan, state: SagaState, outcome: CallOutcome, now: datetime, key: str
) -> SagaState | Refusal:
    """Fold the answer of an action call (or a callback's completion) into the state."""
    if state.status is not S.RUNNING or not is_current(
        plan, state, outcome.step, Phase.ACTION, outcome.attempt
    ):
        return Refusal("stale outcome")
    if outcome.kind is OutcomeKind.ACCEPTED and not plan.steps[outcome.step].callback:
        outcome = replace(outcome, kind=OutcomeKind.SUCCEEDED)  # nothing will call back
    return _ACTION_OUTCOMES[outcome.kind](plan, state, outcome, now, key)


def _accepted(
    plan: Plan, state: SagaState, outcome: CallOutcome, now: datetime, key: str
) -> SagaState | Refusal:
    """The participant took the call and will report by callback: wait for it, bounded."""
    if state.steps[outcome.step].awaiting_callback:
        return Refusal("already accepted")  # a repeated 202 must not restart the wait
    wait = timedelta(seconds=plan.steps[outcome.step].callback_timeout_s)
    return with_step(plan, state, outcome.step, awaiting_callback=True, due_at=now + wait)


def _succeeded(
    plan: Plan, state: SagaState, outcome: CallOutcome, now: datetime, key: str
) -> SagaState | Refusal:
    state = mark_answered(plan, state, outcome, now)
    if plan.steps[outcome.step].kind is StepKind.PIVOT:
        state = replace(state, pivoted=True)
    if all(state.steps[i].status is T.SUCCEEDED for i in members(plan, state)):
        return enter_stage(plan, state, state.stage + 1, now)
    return state


def _rejected(
    plan: Plan, state: SagaState, outcome: CallOutcome, now: datetime, key: str
) -> SagaState | Refusal:
    state = mark_answered(plan, state, outcome, now)
    return step_failed(plan, state, outcome.step, outcome.error or "rejected", now)


def _transient(
    plan: Plan, state: SagaState, outcome: CallOutcome, now: datetime, key: str
) -> SagaState | Refusal:
    """No definite answer: the call may have taken effect, so the step is now uncertain."""
    index, attempts = outcome.step, state.steps[outcome.step].attempts
    if state.steps[index].awaiting_callback:
        # The participant took this attempt (202) and holds its job: a lost answer of
        # the same call (made twice) says nothing new, and the wait has its own timeout.
        return Refusal("already accepted")
    state = with_step(plan, state, index, uncertain=True)
    if budget_left(plan, state, index, Phase.ACTION):
        return retry_later(plan, state, index, Phase.ACTION, outcome.error, now, key)
    state = with_step(
        plan,
        state,
        index,
        status=T.FAILED,
        due_at=None,
        finished_at=now,
        last_error=outcome.error,
    )
    return step_failed(
        plan, state, index, f"gave up after {attempts} attempts: {outcome.error}", now
    )


_OutcomeHandler = Callable[[Plan, SagaState, CallOutcome, datetime, str], SagaState | Refusal]

#: What each kind of answer to a current action call does.
_ACTION_OUTCOMES: dict[OutcomeKind, _OutcomeHandler] = {
    OutcomeKind.ACCEPTED: _accepted,
    OutcomeKind.SUCCEEDED: _succeeded,
    OutcomeKind.REJECTED: _rejected,
    OutcomeKind.TRANSIENT: _transient,
}


def mark_answered(plan: Plan, state: SagaState, outcome: CallOutcome, now: datetime) -> SagaState:
    """Record a definite answer (succeeded or rejected) of a step's action."""
    changes: dict[str, Any]
    if outcome.kind is OutcomeKind.SUCCEEDED:
        changes = {"status": T.SUCCEEDED, "result": outcome.result}
    else:
        changes = {"status": T.REJECTED, "last_error": outcome.error}
    return with_step(
        plan,
        state,
        outcome.step,
        **changes,
        due_at=None,
        finished_at=now,
        awaiting_callback=False,
    )


def on_callback(
    plan: Plan, state: SagaState, completion: CallbackCompleted, now: datetime, key: str
) -> SagaState | Refusal:
    """A completion counts like the answer of the attempt it completes."""
    if completion.kind not in (OutcomeKind.SUCCEEDED, OutcomeKind.REJECTED):
        return Refusal("a completion is either succeeded or rejected")
    outcome = CallOutcome(
        completion.step,
        Phase.ACTION,
        completion.attempt,
        completion.kind,
        completion.result,
        completion.error,
    )
    if state.status is S.FAILED and state.parked_phase is Phase.ACTION:
        return _completion_while_parked(plan, state, outcome, now)
    return on_action_outcome(plan, state, outcome, now, key)


def _completion_while_parked(
    plan: Plan, state: SagaState, outcome: CallOutcome, now: datetime
) -> SagaState | Refusal:
    """A sibling failed and parked the saga while this step waited: keep its answer.

    The saga stays parked; the operator's retry or compensate then knows what
    this step did instead of treating it as unknown.
    """
    step = state.steps[outcome.step]
    if not step.awaiting_callback or not is_current(
        plan, state, outcome.step, Phase.ACTION, outcome.attempt
    ):
        return Refusal("stale outcome")
    if callback_overdue(step, now):
        return Refusal("the completion arrived after the step's timeout")
    return mark_answered(plan, state, outcome, now)


def expire_callbacks(plan: Plan, state: SagaState, now: datetime) -> SagaState:
    """A callback that did not come in time fails its step for good (outcome unknown)."""
    message = "no completion arrived before the step's timeout"
    for index in members(plan, state):
        if state.status is not S.RUNNING:
            break  # the first expiry turned the saga back or parked it
        step = state.steps[index]
        if step.status is T.RUNNING and callback_overdue(step, now):
            state = with_step(
                plan,
                state,
                index,
                status=T.FAILED,
                uncertain=True,
                awaiting_callback=False,
                due_at=None,
                finished_at=now,
                last_error=message,
            )
            state = step_failed(plan, state, index, message, now)
    return state


def step_failed(plan: Plan, state: SagaState, index: int, message: str, now: datetime) -> SagaState:
    """Step ``index`` failed for good: compensate before the pivot, otherwise park."""
    policy = plan.steps[index]
    error = SagaError(policy.name, Phase.ACTION, message)
    if state.pivoted or policy.kind is StepKind.RETRIABLE:
        return park(state, Phase.ACTION, error)  # past the point of no return
    if is_unknown_pivot(plan, state, index):
        return park(state, Phase.ACTION, replace(error, message=f"outcome unknown, {message}"))
    if plan.park_on_failure:
        return park(state, Phase.ACTION, error)
    return begin_compensation(plan, replace(state, error=error), now)
