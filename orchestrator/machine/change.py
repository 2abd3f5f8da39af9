"""The checked ways a transition builds the next state, or declines to.

Every status change goes through ``with_status`` or ``with_step``, so no rule
can move a saga or a step along an edge the tables do not have. These helpers
change what they are told to; the decisions live in the modules that call them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from orchestrator.machine.backoff import backoff
from orchestrator.machine.rules import attempts_in
from orchestrator.machine.state import Phase, Plan, SagaError, SagaState, SagaStatus, StepStatus
from orchestrator.machine.tables import SAGA_TRANSITIONS, STEP_TRANSITIONS, IllegalTransition


@dataclass(frozen=True)
class Refusal:
    """An event not taken, and why: the state stays as it was."""

    reason: str


def with_status(state: SagaState, status: SagaStatus, **changes: Any) -> SagaState:
    """``state`` moved to saga status ``status`` (plus ``changes``), if the table allows it."""
    if status not in SAGA_TRANSITIONS[state.status]:
        raise IllegalTransition(f"saga {state.status} -> {status}")
    return replace(state, status=status, **changes)


def with_step(plan: Plan, state: SagaState, index: int, **changes: Any) -> SagaState:
    """``state`` with step ``index`` changed; a status change is checked against the table."""
    old = state.steps[index]
    status = changes.get("status", old.status)
    if status is not old.status and status not in STEP_TRANSITIONS[old.status]:
        raise IllegalTransition(f"step {plan.steps[index].name}: {old.status} -> {status}")
    steps = list(state.steps)
    steps[index] = replace(old, **changes)
    return replace(state, steps=tuple(steps))


def park(state: SagaState, phase: Phase, error: SagaError) -> SagaState:
    """Stop the saga for an operator, remembering which phase a retry resumes."""
    return with_status(state, SagaStatus.FAILED, parked_phase=phase, error=error)


def retry_later(
    plan: Plan,
    state: SagaState,
    index: int,
    phase: Phase,
    error: str | None,
    now: datetime,
    key: str,
) -> SagaState:
    """Count the next attempt of ``phase`` of step ``index`` and make it due after its backoff.

    The jitter seed names the saga, the step and the attempt, so a replay of
    the same history waits exactly as long.
    """
    step = state.steps[index]
    done = attempts_in(step, phase)
    delay = backoff(plan.steps[index].retry, done - step.budget_from, f"{key}:{index}:{done}")
    counter = "attempts" if phase is Phase.ACTION else "compensation_attempts"
    return with_step(
        plan, state, index, **{counter: done + 1}, due_at=now + delay, last_error=error
    )


def rearm(
    plan: Plan, state: SagaState, index: int, phase: Phase, now: datetime, **changes: Any
) -> SagaState:
    """Make the next attempt of ``phase`` of step ``index`` due now, with a fresh retry budget.

    Entering a stage, entering a compensation stage and an operator's retry
    all start a step's phase this way; ``changes`` are what each also resets.
    """
    done = attempts_in(state.steps[index], phase)
    if phase is Phase.ACTION:
        status, counter = StepStatus.RUNNING, "attempts"
    else:
        status, counter = StepStatus.COMPENSATING, "compensation_attempts"
    return with_step(
        plan,
        state,
        index,
        status=status,
        **{counter: done + 1},
        budget_from=done,
        due_at=now,
        **changes,
    )
