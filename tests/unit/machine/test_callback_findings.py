"""Callback-step bugs found by the property and model tests, as minimal reproductions.

Each test states the behaviour the machine must have, as the smallest history
that once broke it; a bug found later gets its test here before its fix.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator.machine import (
    CallbackCompleted,
    CallOutcome,
    OutcomeKind,
    Phase,
    Plan,
    RetryRequested,
    SagaState,
    SagaStatus,
    StepPlan,
    StepStatus,
    apply,
    due_calls,
    start,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
OK, NO, ACCEPTED = OutcomeKind.SUCCEEDED, OutcomeKind.REJECTED, OutcomeKind.ACCEPTED
ACTION = Phase.ACTION
#: ``a``, then the callback step ``b`` (30 s to complete), then ``c``.
PLAN = Plan.sequential(
    (StepPlan("a"), StepPlan("b", callback=True, callback_timeout_s=30), StepPlan("c"))
)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def b_accepted_at_2s() -> SagaState:
    """``b`` accepted (202) at 2 s: it waits for its completion until 32 s."""
    state = start(PLAN, T0)
    state = apply(PLAN, state, CallOutcome(0, ACTION, 1, OK, {}), at(1)).state
    state = apply(PLAN, state, CallOutcome(1, ACTION, 1, ACCEPTED), at(2)).state
    assert state.steps[1].awaiting_callback
    assert state.steps[1].due_at == at(32)
    return state


def test_a_rejected_step_no_longer_awaits_its_callback() -> None:
    rejected = apply(PLAN, b_accepted_at_2s(), CallbackCompleted(1, 1, NO, error="no"), at(5))
    assert rejected.accepted
    step = rejected.state.steps[1]
    assert step.status is StepStatus.REJECTED
    # The rejected step is not compensated, so nothing ever clears the flag: a
    # compensated saga keeps a step that claims to await a callback.
    assert rejected.state.status is SagaStatus.COMPENSATING
    assert not step.awaiting_callback


def test_a_repeated_202_does_not_extend_the_wait() -> None:
    """A late or repeated answer changes nothing (transitions.py): the same attempt's 202
    again (e.g. two workers made the same call) must not push the timeout back."""
    state = b_accepted_at_2s()
    again = apply(PLAN, state, CallOutcome(1, ACTION, 1, ACCEPTED), at(20))
    assert again.state.steps[1].due_at == at(32)  # actually 50 s: 48 s after the first 202
    assert not again.accepted


def test_a_completion_after_the_timeout_is_refused() -> None:
    """README: after the timeout a completion answers 409. The timeout was 32 s; no event
    came between, so the completion at 40 s is taken (and the outcome depends on whether
    a worker's Tick happened to come first)."""
    late = apply(PLAN, b_accepted_at_2s(), CallbackCompleted(1, 1, OK, {}), at(40))
    assert not late.accepted
    assert late.state.steps[1].status is StepStatus.COMPENSATING  # failed, then compensated


def test_a_completion_that_reaches_a_parked_saga_is_not_lost() -> None:
    """``a`` and the callback step ``b`` run in parallel; ``a`` is refused and the saga
    parks while ``b`` still waits. ``b``'s completion arrives (well within its timeout) and
    is refused as stale, yet after the operator's retry ``b`` keeps waiting for it, is
    never called again, and finally times out as "outcome unknown": work that succeeded
    gets compensated (or parks the saga again), and the participant was told 409."""
    plan = Plan(
        steps=(StepPlan("a"), StepPlan("b", callback=True, callback_timeout_s=30)),
        stages=((0, 1),),
        park_on_failure=True,
    )
    state = start(plan, T0)
    state = apply(plan, state, CallOutcome(1, ACTION, 1, ACCEPTED), at(1)).state
    state = apply(plan, state, CallOutcome(0, ACTION, 1, NO, error="no"), at(2)).state
    assert state.status is SagaStatus.FAILED
    completion = apply(plan, state, CallbackCompleted(1, 1, OK, {"done": True}), at(3))
    retried = apply(plan, completion.state, RetryRequested(), at(10)).state
    called_again = any(c.step == 1 for c in due_calls(plan, retried, at(10)))
    # Either the completion counts, or the retry asks the participant again.
    assert completion.accepted or called_again


def test_a_transient_answer_after_the_202_does_not_end_the_wait() -> None:
    """Found by the model test (``test_model``): the same attempt answered 202, then
    transient (two workers made the same call; the second timed out). The participant
    holds the job, so the lost answer says nothing new, as a repeated 202 says nothing.
    Taking it counted attempt 2 while still awaiting the callback: attempt 2 was never
    called, attempt 1's completion was refused as stale, and the "timeout" fired after
    the backoff (here 100 ms) instead of the step's 30 s."""
    state = b_accepted_at_2s()
    lost = apply(PLAN, state, CallOutcome(1, ACTION, 1, OutcomeKind.TRANSIENT, error="lost"), at(3))
    assert not lost.accepted
    assert lost.state == state
    done = apply(PLAN, lost.state, CallbackCompleted(1, 1, OK, {"shipped": True}), at(10))
    assert done.accepted
    assert done.state.steps[1].status is StepStatus.SUCCEEDED
