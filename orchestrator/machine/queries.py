"""What a saga needs from a worker: the calls due now and when to look again.

Both are read-only: they follow from the state alone, so a worker that crashed
loses nothing; whoever loads the state next gets the same calls, with the same
attempt numbers (and so the same idempotency keys).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from orchestrator.machine.rules import (
    CALLED_IN,
    WORKING_PHASE,
    attempts_in,
    deadline_can_act,
    members,
)
from orchestrator.machine.state import Phase, Plan, SagaState


@dataclass(frozen=True)
class CallCommand:
    """Call ``phase`` of step ``step`` now; ``attempt`` goes into ``X-Saga-Attempt``."""

    step: int
    phase: Phase
    attempt: int


def due_calls(plan: Plan, state: SagaState, now: datetime) -> tuple[CallCommand, ...]:
    """The calls to make now, at most one per step of the current stage."""
    phase = WORKING_PHASE.get(state.status)
    if phase is None:
        return ()
    calls = []
    for index in members(plan, state):
        step = state.steps[index]
        if step.awaiting_callback:
            continue  # nothing to call: the participant reports by callback
        if step.status is CALLED_IN[phase] and step.due_at is not None and step.due_at <= now:
            calls.append(CallCommand(index, phase, attempts_in(step, phase)))
    return tuple(calls)


def wake_at(plan: Plan, state: SagaState) -> datetime | None:
    """When the saga next needs a worker; ``None`` when it waits for nobody but a person.

    A step awaiting its callback counts too: its ``due_at`` is when the wait
    gives up, and a worker must be there to fail the step.
    """
    phase = WORKING_PHASE.get(state.status)
    if phase is None:
        return None
    times = [
        step.due_at
        for index in members(plan, state)
        if (step := state.steps[index]).status is CALLED_IN[phase] and step.due_at is not None
    ]
    if deadline_can_act(plan, state) and state.deadline_at is not None:
        times.append(state.deadline_at)
    return min(times) if times else None
