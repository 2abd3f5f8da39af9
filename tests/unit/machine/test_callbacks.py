"""Callback steps in the pure machine: accepted, completed, timed out, raced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator.machine import (
    CallbackCompleted,
    CallOutcome,
    OutcomeKind,
    Phase,
    Plan,
    SagaState,
    SagaStatus,
    StepPlan,
    StepStatus,
    Tick,
    apply,
    due_calls,
    start,
    wake_at,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PLAN = Plan.sequential(
    (StepPlan("a"), StepPlan("b", callback=True, callback_timeout_s=30), StepPlan("c"))
)
OK, ACCEPTED = OutcomeKind.SUCCEEDED, OutcomeKind.ACCEPTED


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def accepted_b() -> SagaState:
    state = start(PLAN, T0)
    state = apply(PLAN, state, CallOutcome(0, Phase.ACTION, 1, OK, {"a": 1}), at(1)).state
    return apply(PLAN, state, CallOutcome(1, Phase.ACTION, 1, ACCEPTED, {}), at(2)).state


def test_accepted_step_waits_without_calls_until_its_timeout() -> None:
    state = accepted_b()
    assert state.steps[1].status is StepStatus.RUNNING
    assert state.steps[1].awaiting_callback
    assert due_calls(PLAN, state, at(20)) == ()
    assert wake_at(PLAN, state) == at(32)


def test_completion_goes_forward_with_its_result() -> None:
    done = CallbackCompleted(1, 1, OK, {"shipped": True})
    decision = apply(PLAN, accepted_b(), done, at(5))
    assert decision.accepted
    assert decision.state.steps[1].status is StepStatus.SUCCEEDED
    assert decision.state.results(PLAN)["b"] == {"shipped": True}
    assert [c.step for c in due_calls(PLAN, decision.state, at(5))] == [2]
    again = apply(PLAN, decision.state, done, at(6))
    assert not again.accepted
    assert again.state == decision.state


def test_rejection_by_callback_compensates() -> None:
    rejected = CallbackCompleted(1, 1, OutcomeKind.REJECTED, error="no stock")
    state = apply(PLAN, accepted_b(), rejected, at(5)).state
    assert state.status is SagaStatus.COMPENSATING
    assert [(c.step, c.phase) for c in due_calls(PLAN, state, at(5))] == [(0, Phase.COMPENSATION)]


def test_timeout_fails_the_step_and_compensates_it() -> None:
    state = apply(PLAN, accepted_b(), Tick(), at(40)).state
    assert state.status is SagaStatus.COMPENSATING
    assert state.steps[1].status is StepStatus.COMPENSATING
    assert not state.steps[1].awaiting_callback
    assert [c.step for c in due_calls(PLAN, state, at(40))] == [1]
    late = apply(PLAN, state, CallbackCompleted(1, 1, OK, {}), at(41))
    assert not late.accepted


def test_completion_before_the_202_is_recorded_wins() -> None:
    state = start(PLAN, T0)
    state = apply(PLAN, state, CallOutcome(0, Phase.ACTION, 1, OK, {}), at(1)).state
    state = apply(PLAN, state, CallbackCompleted(1, 1, OK, {"fast": 1}), at(2)).state
    assert state.steps[1].status is StepStatus.SUCCEEDED
    after = apply(PLAN, state, CallOutcome(1, Phase.ACTION, 1, ACCEPTED, {}), at(3))
    assert not after.accepted  # the worker's late 202 changes nothing
    assert after.state.steps[1].status is StepStatus.SUCCEEDED


def test_a_202_from_an_ordinary_step_is_a_success() -> None:
    state = apply(PLAN, start(PLAN, T0), CallOutcome(0, Phase.ACTION, 1, ACCEPTED, {"x": 1}), at(1))
    assert state.state.steps[0].status is StepStatus.SUCCEEDED
