"""Compensation: the stages walked in reverse, undoing what may have taken effect."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from orchestrator.machine.change import Refusal, park, rearm, retry_later, with_status, with_step
from orchestrator.machine.events import CallOutcome, OutcomeKind
from orchestrator.machine.rules import budget_left, is_current, members, needs_compensation
from orchestrator.machine.state import Phase, Plan, SagaError, SagaState, SagaStatus, StepStatus

S, T = SagaStatus, StepStatus


def begin_compensation(plan: Plan, state: SagaState, now: datetime) -> SagaState:
    """Turn back from the current stage; the caller has set the error that explains why."""
    state = with_status(state, S.COMPENSATING, parked_phase=None)
    return enter_compensation_stage(plan, state, state.stage, now)


def enter_compensation_stage(plan: Plan, state: SagaState, stage: int, now: datetime) -> SagaState:
    """Compensate the members of the latest stage, from ``stage`` down, that need it.

    Stages with nothing to undo are skipped in the same step, so a saga whose
    first step was rejected at once ends ``compensated`` in one event.
    """
    for candidate in range(stage, -1, -1):
        todo = [i for i in plan.stages[candidate] if needs_compensation(plan, state, i)]
        if todo:
            state = replace(state, stage=candidate)
            for index in todo:
                state = rearm(plan, state, index, Phase.COMPENSATION, now, awaiting_callback=False)
            return state
    return with_status(state, S.COMPENSATED, stage=0)


def on_compensation_outcome(
    plan: Plan, state: SagaState, outcome: CallOutcome, now: datetime, key: str
) -> SagaState | Refusal:
    """Record the answer of a compensation call, then see whether the stage is done."""
    index = outcome.step
    if state.status is not S.COMPENSATING or not is_current(
        plan, state, index, Phase.COMPENSATION, outcome.attempt
    ):
        return Refusal("stale outcome")
    if outcome.kind is OutcomeKind.SUCCEEDED:
        state = with_step(plan, state, index, status=T.COMPENSATED, due_at=None, finished_at=now)
    elif outcome.kind is OutcomeKind.TRANSIENT and budget_left(
        plan, state, index, Phase.COMPENSATION
    ):
        state = retry_later(plan, state, index, Phase.COMPENSATION, outcome.error, now, key)
    else:
        # A compensation that cannot succeed must not be skipped silently:
        # the saga parks below, visibly, once its siblings are done.
        state = with_step(
            plan,
            state,
            index,
            status=T.COMPENSATION_FAILED,
            due_at=None,
            finished_at=now,
            last_error=outcome.error,
        )
    return _after_compensation_outcome(plan, state, now)


def _after_compensation_outcome(plan: Plan, state: SagaState, now: datetime) -> SagaState:
    """Wait for the stage's other compensations, then park or move to the earlier stage."""
    current = members(plan, state)
    if any(state.steps[i].status is T.COMPENSATING for i in current):
        return state
    failed = [i for i in current if state.steps[i].status is T.COMPENSATION_FAILED]
    if failed:
        index = failed[0]
        message = f"compensation failed: {state.steps[index].last_error}"
        error = SagaError(plan.steps[index].name, Phase.COMPENSATION, message)
        return park(state, Phase.COMPENSATION, error)
    return enter_compensation_stage(plan, state, state.stage - 1, now)
