"""Golden transcripts of whole sagas through the pure state machine.

Each test drives a saga with ``SagaRun`` (see ``builders``) and compares the calls
the machine asked for, batch by batch: ``"b.compensation#1"`` is the first attempt
of step ``b``'s compensation; calls in one batch were due together (concurrently).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from orchestrator.machine import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    SAGA_TRANSITIONS,
    STEP_TRANSITIONS,
    CallOutcome,
    CancelRequested,
    CompensateRequested,
    OutcomeKind,
    Phase,
    RetryPlan,
    RetryRequested,
    SagaError,
    SagaState,
    SagaStatus,
    StepStatus,
    Tick,
    apply,
    due_calls,
    start,
    state_from_json,
    state_to_json,
    wake_at,
)
from orchestrator.machine.backoff import backoff
from tests.unit.machine.builders import (
    LOST,
    NO,
    OK,
    T0,
    SagaRun,
    comp,
    par,
    pivot,
    plan,
    retriable,
    seq,
    with_step,
)

S, St = SagaStatus, StepStatus


def ms(value: float) -> timedelta:
    return timedelta(milliseconds=value)


def statuses(run: SagaRun) -> dict[str, StepStatus]:
    return {s.name: run.state.steps[i].status for i, s in enumerate(run.plan.steps)}


def pivot_plan(deadline_s: float | None = None) -> SagaRun:
    """``a`` then pivot ``p`` then retriable ``r``: the classic order saga."""
    return SagaRun(plan("a", pivot("p"), retriable("r"), deadline_s=deadline_s))


# -- forward ---------------------------------------------------------------------------


def test_start_runs_the_first_stage_now() -> None:
    run = SagaRun(seq("a", "b", "c"))

    assert run.status is S.RUNNING
    assert run.state.stage == 0
    assert statuses(run) == {"a": St.RUNNING, "b": St.PENDING, "c": St.PENDING}
    assert run.step("a").attempts == 1
    assert run.step("a").started_at == T0
    assert run.due() == ("a.action#1",)
    assert run.wake() == T0


def test_happy_path_of_three_steps() -> None:
    run = SagaRun(seq("a", "b", "c")).drive()

    assert run.batches == [("a.action#1",), ("b.action#1",), ("c.action#1",)]
    assert run.status is S.COMPLETED
    assert set(statuses(run).values()) == {St.SUCCEEDED}
    assert run.state.results(run.plan) == {
        "a": {"step": "a"},
        "b": {"step": "b"},
        "c": {"step": "c"},
    }
    assert run.state.error is None
    assert run.due() == ()
    assert run.wake() is None


def test_third_step_rejected_compensates_second_then_first() -> None:
    run = SagaRun(seq("a", "b", "c")).drive(actions={"c": [NO]})

    assert run.batches == [
        ("a.action#1",),
        ("b.action#1",),
        ("c.action#1",),
        ("b.compensation#1",),
        ("a.compensation#1",),
    ]
    assert run.status is S.COMPENSATED
    assert statuses(run) == {"a": St.COMPENSATED, "b": St.COMPENSATED, "c": St.REJECTED}
    assert run.state.error == SagaError("c", Phase.ACTION, "c rejected")
    assert run.wake() is None


def test_first_step_rejected_at_once_ends_compensated_in_one_event() -> None:
    """Nothing may have taken effect: running -> compensating -> compensated in one apply."""
    run = SagaRun(seq("a", "b"))

    decision = run.answer("a", NO)

    assert decision.accepted
    assert run.status is S.COMPENSATED
    assert run.due() == ()
    assert S.COMPENSATED not in SAGA_TRANSITIONS[S.RUNNING]  # two edges, one event


def test_transient_failure_then_success() -> None:
    run = SagaRun(seq("a", "b")).drive(actions={"b": [LOST]})

    assert run.batches == [("a.action#1",), ("b.action#1",), ("b.action#2",)]
    # FAST: 100 ms after the first failure, no jitter
    assert run.batch_times[2] - run.batch_times[1] == ms(100)
    assert run.status is S.COMPLETED
    assert run.step("b").attempts == 2
    assert run.step("b").uncertain


def test_a_transient_failure_schedules_the_next_attempt() -> None:
    run = SagaRun(seq("a"))

    decision = run.answer("a", LOST)

    assert decision.accepted
    assert run.status is S.RUNNING
    assert run.step("a").status is St.RUNNING
    assert run.step("a").attempts == 2
    assert run.step("a").last_error == "a transient"
    assert run.due() == ()
    assert run.wake() == T0 + ms(100)
    assert run.advance(0.1).due() == ("a.action#2",)


def test_retry_delays_follow_the_backoff_policy() -> None:
    policy = RetryPlan(max_attempts=4, initial_backoff_ms=100, max_backoff_ms=250, jitter=0.2)
    run = SagaRun(plan("a", comp("b", policy))).drive(actions={"b": [LOST, LOST, LOST]})

    assert run.calls[1:] == ["b.action#1", "b.action#2", "b.action#3", "b.action#4"]
    delays = [
        later - earlier
        for earlier, later in zip(run.batch_times[1:-1], run.batch_times[2:], strict=True)
    ]
    # the jitter is seeded by "<saga>:<step index>:<attempt that failed>"
    assert delays == [backoff(policy, n, f"saga-1:1:{n}") for n in (1, 2, 3)]
    for delay, nominal in zip(delays, (100, 200, 250), strict=True):
        assert ms(nominal * 0.8) <= delay <= ms(nominal * 1.2)


def test_retries_exhausted_compensate_the_failed_step_too() -> None:
    run = SagaRun(seq("a", "b", "c")).drive(actions={"b": [LOST, LOST, LOST]})

    assert run.batches == [
        ("a.action#1",),
        ("b.action#1",),
        ("b.action#2",),
        ("b.action#3",),
        # b's outcome is unknown: it may have taken effect, so it is compensated first
        ("b.compensation#1",),
        ("a.compensation#1",),
    ]
    assert run.status is S.COMPENSATED
    assert statuses(run) == {"a": St.COMPENSATED, "b": St.COMPENSATED, "c": St.PENDING}
    assert run.state.error == SagaError("b", Phase.ACTION, "gave up after 3 attempts: b transient")


def test_rejection_after_a_transient_attempt_is_compensated() -> None:
    run = SagaRun(seq("a", "b")).drive(actions={"b": [LOST, NO]})

    assert run.calls[-2:] == ["b.compensation#1", "a.compensation#1"]
    assert statuses(run) == {"a": St.COMPENSATED, "b": St.COMPENSATED}


# -- pivot and retriable steps -------------------------------------------------------


def test_after_the_pivot_a_rejected_retriable_step_parks_and_is_never_compensated() -> None:
    run = pivot_plan().drive(actions={"r": [NO]})

    assert run.calls == ["a.action#1", "p.action#1", "r.action#1"]
    assert run.status is S.FAILED
    assert run.state.pivoted
    assert run.state.parked_phase is Phase.ACTION
    assert run.state.error == SagaError("r", Phase.ACTION, "r rejected")
    assert run.wake() is None
    assert run.due() == ()

    refused = run.send(CompensateRequested())
    assert not refused.accepted
    assert refused.reason is not None
    assert "pivot" in refused.reason
    assert run.status is S.FAILED

    assert run.send(RetryRequested()).accepted
    assert run.due() == ("r.action#2",)
    run.drive()
    assert run.status is S.COMPLETED
    assert not any("compensation" in call for call in run.calls)


def test_a_retriable_step_is_retried_past_its_budget() -> None:
    run = pivot_plan().drive(actions={"r": [LOST] * 10})

    assert run.status is S.COMPLETED
    assert run.step("r").attempts == 11  # max_attempts is 3
    # the delays grow to max_backoff_ms (1 s) and stay there
    assert run.batch_times[-1] - run.batch_times[-2] == ms(1_000)


def test_pivot_exhausted_parks_with_outcome_unknown() -> None:
    run = pivot_plan().drive(actions={"p": [LOST, LOST, LOST]})

    assert run.calls == ["a.action#1", "p.action#1", "p.action#2", "p.action#3"]
    assert run.status is S.FAILED
    assert run.step("p").status is St.FAILED
    assert not run.state.pivoted
    assert run.state.error is not None
    assert run.state.error.step == "p"
    assert run.state.error.message.startswith("outcome unknown")
    assert run.step("a").status is St.SUCCEEDED  # not compensated: p may have happened
    assert run.wake() is None

    refused = run.send(CompensateRequested())
    assert not refused.accepted
    assert refused.reason is not None
    assert "unknown" in refused.reason
    assert not run.send(CancelRequested()).accepted


def test_retrying_an_unknown_pivot_learns_it_succeeded() -> None:
    run = pivot_plan().drive(actions={"p": [LOST, LOST, LOST]})

    assert run.send(RetryRequested()).accepted
    assert run.due() == ("p.action#4",)  # same idempotency key, next attempt, fresh budget
    assert run.state.error is None
    run.drive()
    assert run.status is S.COMPLETED
    assert run.calls[-2:] == ["p.action#4", "r.action#1"]


def test_retrying_an_unknown_pivot_learns_it_was_rejected() -> None:
    run = pivot_plan().drive(actions={"p": [LOST, LOST, LOST]})

    run.send(RetryRequested())
    run.drive(actions={"p": [NO]})

    assert run.status is S.COMPENSATED
    assert run.calls[-2:] == ["p.action#4", "a.compensation#1"]


def test_pivot_rejected_compensates_the_earlier_steps() -> None:
    run = pivot_plan().drive(actions={"p": [NO]})

    assert run.calls == ["a.action#1", "p.action#1", "a.compensation#1"]
    assert run.status is S.COMPENSATED
    assert statuses(run) == {"a": St.COMPENSATED, "p": St.REJECTED, "r": St.PENDING}


# -- compensation that cannot succeed ------------------------------------------------


def test_compensation_that_keeps_failing_parks_and_retry_resumes_it() -> None:
    run = SagaRun(seq("a", "b", "c")).drive(
        actions={"c": [NO]}, compensations={"b": [LOST, LOST, LOST]}
    )

    assert run.calls[3:] == ["b.compensation#1", "b.compensation#2", "b.compensation#3"]
    assert run.status is S.FAILED
    assert run.state.parked_phase is Phase.COMPENSATION
    assert run.state.error == SagaError("b", Phase.COMPENSATION, "compensation failed: b transient")
    assert statuses(run) == {"a": St.SUCCEEDED, "b": St.COMPENSATION_FAILED, "c": St.REJECTED}
    assert run.wake() is None
    assert run.due() == ()

    assert run.send(RetryRequested()).accepted
    assert run.status is S.COMPENSATING
    assert run.due() == ("b.compensation#4",)
    assert run.step("b").budget_from == 3  # a fresh budget of 3 attempts
    run.drive(compensations={"b": [LOST, LOST]})  # within the new budget
    assert run.calls[-4:] == [
        "b.compensation#4",
        "b.compensation#5",
        "b.compensation#6",
        "a.compensation#1",
    ]
    assert run.status is S.COMPENSATED


def test_compensation_rejected_parks_at_once() -> None:
    run = SagaRun(seq("a", "b")).drive(actions={"b": [NO]}, compensations={"a": [NO]})

    assert run.calls == ["a.action#1", "b.action#1", "a.compensation#1"]
    assert run.status is S.FAILED
    assert run.state.parked_phase is Phase.COMPENSATION
    assert run.step("a").status is St.COMPENSATION_FAILED


# -- park on failure, operator requests ------------------------------------------------


def test_park_on_failure_then_retry_completes() -> None:
    run = SagaRun(seq("a", "b", "c", park=True)).drive(actions={"b": [NO]})

    assert run.calls == ["a.action#1", "b.action#1"]
    assert run.status is S.FAILED
    assert run.state.parked_phase is Phase.ACTION
    assert run.state.error == SagaError("b", Phase.ACTION, "b rejected")

    assert run.send(RetryRequested()).accepted
    assert run.status is S.RUNNING
    assert run.due() == ("b.action#2",)
    run.drive()
    assert run.status is S.COMPLETED
    assert run.calls == ["a.action#1", "b.action#1", "b.action#2", "c.action#1"]
    assert run.state.error is None


def test_an_operator_retry_gives_a_fresh_retry_budget() -> None:
    run = SagaRun(seq("a", "b", park=True)).drive(actions={"b": [LOST] * 3})
    assert run.status is S.FAILED

    run.send(RetryRequested())
    run.drive(actions={"b": [LOST, LOST]})

    assert run.status is S.COMPLETED
    assert run.calls[1:] == [f"b.action#{n}" for n in range(1, 7)]


def test_compensate_requested_on_a_parked_saga() -> None:
    run = SagaRun(seq("a", "b", "c", park=True)).drive(actions={"b": [NO]})

    assert run.send(CompensateRequested()).accepted
    run.drive()

    assert run.status is S.COMPENSATED
    assert run.calls == ["a.action#1", "b.action#1", "a.compensation#1"]
    assert statuses(run) == {"a": St.COMPENSATED, "b": St.REJECTED, "c": St.PENDING}


def test_compensate_requested_compensates_a_step_whose_outcome_is_unknown() -> None:
    run = SagaRun(seq("a", "b", park=True)).drive(actions={"b": [LOST] * 3})

    run.send(CompensateRequested())
    run.drive()

    assert run.calls[-2:] == ["b.compensation#1", "a.compensation#1"]
    assert run.status is S.COMPENSATED


def test_compensate_requested_is_refused_unless_parked_at_a_forward_step() -> None:
    running = SagaRun(seq("a", "b"))
    parked_compensating = SagaRun(seq("a", "b")).drive(
        actions={"b": [NO]}, compensations={"a": [NO]}
    )
    for run in (running, parked_compensating):
        before = run.state
        decision = run.send(CompensateRequested())
        assert not decision.accepted
        assert decision.reason == "only a saga parked at a forward step can be compensated"
        assert run.state == before


@pytest.mark.parametrize("final", ["completed", "compensated", "running"])
def test_retry_requested_is_refused_unless_failed(final: str) -> None:
    run = SagaRun(seq("a", "b"))
    if final != "running":
        run.drive(actions={"b": [NO]} if final == "compensated" else {})
    before = run.state

    decision = run.send(RetryRequested())

    assert not decision.accepted
    assert decision.reason == f"only a failed saga can be retried; this one is {final}"
    assert run.state == before


# -- cancel ------------------------------------------------------------------------


def test_cancel_compensates_a_running_saga_including_the_step_in_flight() -> None:
    run = SagaRun(seq("a", "b", "c"))
    run.answer("a")
    assert run.due() == ("b.action#1",)  # b's call is out when the cancel arrives

    decision = run.send(CancelRequested("customer changed their mind"))

    assert decision.accepted
    assert run.status is S.COMPENSATING
    assert run.state.error == SagaError("b", Phase.ACTION, "customer changed their mind")
    assert run.due() == ("b.compensation#1",)
    late = run.send(run.outcome("b", OK, phase=Phase.ACTION, attempt=1))
    assert not late.accepted
    run.drive()
    assert run.calls == ["b.compensation#1", "a.compensation#1"]
    assert run.status is S.COMPENSATED


def test_cancel_is_refused_after_the_pivot() -> None:
    run = pivot_plan()
    run.answer("a")
    run.answer("p")
    before = run.state

    decision = run.send(CancelRequested())

    assert not decision.accepted
    assert decision.reason == "the saga is past its pivot step and can only go forward"
    assert run.state == before


def test_cancel_is_refused_while_the_pivot_is_in_flight() -> None:
    run = pivot_plan()
    run.answer("a")
    assert run.due() == ("p.action#1",)
    before = run.state

    decision = run.send(CancelRequested())

    assert not decision.accepted
    assert decision.reason == "the saga's pivot step is in progress; its outcome decides"
    assert run.state == before


@pytest.mark.parametrize(
    ("actions", "compensations", "status"),
    [
        ({}, {}, S.COMPLETED),
        ({"b": [NO]}, {}, S.COMPENSATED),
        ({"b": [NO]}, {"a": [NO]}, S.FAILED),
    ],
)
def test_cancel_is_refused_unless_running(
    actions: dict[str, list[OutcomeKind]],
    compensations: dict[str, list[OutcomeKind]],
    status: SagaStatus,
) -> None:
    run = SagaRun(seq("a", "b")).drive(actions=actions, compensations=compensations)
    assert run.status is status
    before = run.state

    decision = run.send(CancelRequested())

    assert not decision.accepted
    assert decision.reason == f"the saga is {status.value}, not running"
    assert run.state == before


# -- deadline ----------------------------------------------------------------------


def test_deadline_passed_compensates_a_running_saga() -> None:
    slow = RetryPlan(initial_backoff_ms=20_000, jitter=0.0)
    run = SagaRun(plan("a", comp("b", slow), deadline_s=10))
    assert run.state.deadline_at == T0 + timedelta(seconds=10)
    run.answer("a")
    run.answer("b", LOST)  # next attempt due at T0 + 20 s, after the deadline

    assert run.wake() == T0 + timedelta(seconds=10)
    run.now = T0 + timedelta(seconds=10) - ms(1)
    run.send(Tick())
    assert run.status is S.RUNNING

    run.now = T0 + timedelta(seconds=10)
    assert run.send(Tick()).accepted
    assert run.status is S.COMPENSATING
    assert run.state.error == SagaError("b", Phase.ACTION, "deadline passed")
    run.drive()
    assert run.calls == ["b.compensation#1", "a.compensation#1"]
    assert run.status is S.COMPENSATED


def test_deadline_does_not_apply_after_the_pivot() -> None:
    slow = RetryPlan(initial_backoff_ms=60_000, max_backoff_ms=60_000, jitter=0.0)
    run = SagaRun(plan("a", pivot("p"), retriable("r", slow), deadline_s=10))
    run.answer("a")
    run.answer("p")
    run.answer("r", LOST)

    assert run.wake() == T0 + timedelta(seconds=60)  # not the deadline
    run.advance(60).send(Tick())
    assert run.status is S.RUNNING
    run.drive()
    assert run.status is S.COMPLETED


def test_deadline_waits_for_a_pivot_in_flight() -> None:
    run = SagaRun(plan("a", pivot("p"), retriable("r"), deadline_s=10))
    run.answer("a")
    run.advance(11).send(Tick())

    assert run.status is S.RUNNING  # p's call is out: its outcome decides
    run.answer("p", NO)
    assert run.status is S.COMPENSATING


def test_deadline_passed_before_the_pivot_started_compensates() -> None:
    run = SagaRun(plan("a", pivot("p"), retriable("r"), deadline_s=10))

    run.advance(11).answer("a")  # a's answer comes back after the deadline

    assert run.status is S.COMPENSATING
    assert run.due() == ("a.compensation#1",)


def test_wake_at_is_not_in_the_past_while_the_pivot_waits() -> None:
    slow = RetryPlan(initial_backoff_ms=5_000, max_backoff_ms=5_000, jitter=0.0)
    run = SagaRun(plan("a", pivot("p", slow), retriable("r"), deadline_s=10))
    run.answer("a")
    run.advance(9).answer("p", LOST)  # next attempt at T0 + 14 s
    run.advance(1).send(Tick())  # the deadline: the pivot's outcome is unknown, so no compensation

    assert run.status is S.RUNNING
    assert run.due() == ()
    assert run.wake() == T0 + timedelta(seconds=14)


def test_no_step_starts_after_the_deadline() -> None:
    """Once the deadline has passed, the next stage is not entered: what was done is undone
    and the step that never started stays pending (no call of any kind)."""
    run = SagaRun(seq("a", "b", deadline_s=10))

    run.advance(11).answer("a")

    assert run.status is S.COMPENSATING
    assert run.due() == ("a.compensation#1",)
    assert run.step("b").status is St.PENDING
    assert run.step("b").attempts == 0


def test_due_calls_do_not_enforce_the_deadline_until_an_event_is_applied() -> None:
    """Worth knowing for the worker: ``due_calls`` only reads the state, so after
    sleeping past the deadline it must apply a ``Tick`` before asking what is due."""
    run = SagaRun(seq("a", "b", deadline_s=10))
    run.answer("a")
    run.answer("b", LOST)

    run.advance(30)
    assert run.due() == ("b.action#2",)  # the deadline has passed, yet an action is due
    run.send(Tick())
    assert run.due() == ("b.compensation#1",)


def test_an_ignored_outcome_still_enforces_the_deadline() -> None:
    """``accepted=False`` does not mean "state unchanged": the deadline is enforced anyway."""
    run = SagaRun(seq("a", "b", deadline_s=10))

    decision = run.advance(11).answer("a", OK, attempt=7)

    assert not decision.accepted
    assert decision.reason == "stale outcome"
    assert run.status is S.COMPENSATING


def test_operator_retry_after_the_deadline_compensates_at_once() -> None:
    """Surprising: the operator asks for a retry, the accepted decision compensates."""
    run = SagaRun(seq("a", "b", park=True, deadline_s=10)).drive(actions={"b": [NO]})
    assert run.status is S.FAILED

    decision = run.advance(20).send(RetryRequested())

    assert decision.accepted
    assert run.status is S.COMPENSATING
    assert run.state.error == SagaError("b", Phase.ACTION, "deadline passed")


# -- stale outcomes ----------------------------------------------------------------


STALE = {
    "an older attempt": lambda run: run.outcome("b", LOST, attempt=1),
    "a future attempt": lambda run: run.outcome("b", OK, attempt=3),
    "the other phase": lambda run: run.outcome("b", OK, phase=Phase.COMPENSATION, attempt=2),
    "a step of an earlier stage": lambda run: run.outcome("a", OK, attempt=1),
    "a step of a later stage": lambda run: run.outcome("c", OK, attempt=1),
}


@pytest.mark.parametrize("which", STALE)
def test_stale_outcomes_are_ignored(which: str) -> None:
    run = SagaRun(seq("a", "b", "c"))
    run.answer("a")
    run.answer("b", LOST)
    run.advance(1)
    assert run.due() == ("b.action#2",)
    before = run.state

    decision = run.send(STALE[which](run))

    assert not decision.accepted
    assert decision.reason == "stale outcome"
    assert run.state == before


def test_a_repeated_outcome_is_taken_once() -> None:
    run = SagaRun(seq("a", "b"))
    first = run.outcome("a", OK, result={"id": 1})
    assert run.send(first).accepted
    after_first = run.state

    assert not run.send(first).accepted
    assert run.state == after_first


def test_outcomes_are_ignored_while_parked() -> None:
    run = SagaRun(plan(par("a", "b"), "c", park=True))
    run.answer("b", NO)
    assert run.status is S.FAILED
    before = run.state

    assert not run.answer("a", OK, phase=Phase.ACTION, attempt=1).accepted
    assert run.state == before


# -- parallel groups ---------------------------------------------------------------


def test_a_parallel_stage_runs_concurrently_and_waits_for_every_member() -> None:
    run = SagaRun(plan("a", par("b", "c", "d"), "e"))
    run.answer("a")
    assert run.due() == ("b.action#1", "c.action#1", "d.action#1")

    run.answer("c")
    run.answer("b")
    assert run.due() == ("d.action#1",)
    run.answer("d")
    assert run.due() == ("e.action#1",)


def test_parallel_member_rejected_compensates_the_others_together_then_earlier_steps() -> None:
    run = SagaRun(plan("a", par("b", "c", "d"), "e")).drive(actions={"c": [NO]})

    assert run.batches == [
        ("a.action#1",),
        ("b.action#1", "c.action#1", "d.action#1"),
        # b succeeded, d was still in flight when c was rejected: both undone, together
        ("b.compensation#1", "d.compensation#1"),
        ("a.compensation#1",),
    ]
    assert run.status is S.COMPENSATED
    assert statuses(run) == {
        "a": St.COMPENSATED,
        "b": St.COMPENSATED,
        "c": St.REJECTED,
        "d": St.COMPENSATED,
        "e": St.PENDING,
    }


def test_an_earlier_stage_is_compensated_only_after_the_whole_parallel_group() -> None:
    run = SagaRun(plan("a", par("b", "c", "d"), "e"))
    run.answer("a")
    run.answer("b")
    run.answer("c", NO)
    assert run.due() == ("b.compensation#1", "d.compensation#1")

    run.answer("b")
    run.answer("d", LOST)
    assert run.due() == ()
    assert run.wake() == run.now + ms(100)
    run.advance(0.1)
    assert run.due() == ("d.compensation#2",)
    run.answer("d")
    assert run.due() == ("a.compensation#1",)


def test_retry_of_a_parked_parallel_group_resends_the_member_still_in_flight() -> None:
    run = SagaRun(plan(par("a", "b"), "c", park=True))
    run.answer("b", NO)
    assert run.status is S.FAILED

    run.send(RetryRequested())

    # a's first answer was dropped while parked: the same attempt goes out again
    assert run.due() == ("a.action#1", "b.action#2")
    run.drive()
    assert run.status is S.COMPLETED


# -- backoff -----------------------------------------------------------------------


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPlan(initial_backoff_ms=100, max_backoff_ms=1_000, multiplier=2.0, jitter=0.0)

    delays = [backoff(policy, n, "saga-1:0:1") for n in range(1, 8)]

    assert delays == [ms(v) for v in (100, 200, 400, 800, 1_000, 1_000, 1_000)]


def test_backoff_jitter_is_bounded_and_deterministic_per_key() -> None:
    policy = RetryPlan(initial_backoff_ms=1_000, max_backoff_ms=10_000, jitter=0.5)

    for n, nominal in ((1, 1_000), (2, 2_000), (3, 4_000), (10, 10_000)):
        for key in (f"saga-{i}:0:{n}" for i in range(20)):
            delay = backoff(policy, n, key)
            assert delay == backoff(policy, n, key)
            assert ms(nominal * 0.5) <= delay <= ms(nominal * 1.5)
    spread = {backoff(policy, 1, f"saga-{i}:0:1") for i in range(20)}
    assert len(spread) > 10  # different sagas do not retry in lockstep


def test_retry_delays_are_the_same_on_replay() -> None:
    policy = RetryPlan(initial_backoff_ms=100, jitter=0.5)
    runs = [
        SagaRun(plan(comp("a", policy)), key="saga-42").drive(actions={"a": [LOST, LOST]})
        for _ in range(2)
    ]

    assert runs[0].batch_times == runs[1].batch_times
    assert runs[0].history == runs[1].history


def test_backoff_does_not_overflow_after_many_failures() -> None:
    assert backoff(RetryPlan(), 1_025, "saga-1:2:1025") <= ms(10_000 * 1.2)


def test_a_retriable_step_can_fail_transiently_for_hours() -> None:
    saga = pivot_plan(deadline_s=None)
    saga.answer("a")
    saga.answer("p")
    r = saga.index("r")
    # r has failed transiently 1024 times (about 3 hours at the 10 s cap)
    saga.state = with_step(saga.state, r, replace(saga.state.steps[r], attempts=1_025))

    decision = saga.answer("r", LOST)

    assert decision.accepted
    assert saga.step("r").attempts == 1_026


# -- serialisation -----------------------------------------------------------------


def every_state_of_some_sagas() -> list[SagaState]:
    runs = [
        SagaRun(seq("a", "b", "c")).drive(),
        SagaRun(plan("a", par("b", "c", "d"), "e")).drive(actions={"c": [LOST, NO]}),
        SagaRun(seq("a", "b", "c")).drive(actions={"c": [NO]}, compensations={"b": [NO]}),
        pivot_plan(deadline_s=30.5).drive(actions={"p": [LOST] * 3}),
        SagaRun(seq("a", "b", deadline_s=0.25)).drive(actions={"b": [LOST] * 2}),
    ]
    return [state for run in runs for state in run.history]


def test_state_round_trips_through_json() -> None:
    states = every_state_of_some_sagas()
    assert len(states) > 30

    for state in states:
        document = json.loads(json.dumps(state_to_json(state)))
        assert state_from_json(document) == state


def test_the_json_round_trip_keeps_timezones_and_error() -> None:
    run = pivot_plan(deadline_s=30.5).drive(actions={"p": [LOST] * 3})

    back = state_from_json(json.loads(json.dumps(state_to_json(run.state))))

    assert back.deadline_at == T0 + timedelta(seconds=30.5)
    assert back.deadline_at is not None
    assert back.deadline_at.utcoffset() == timedelta(0)
    assert back.error == run.state.error
    assert back.parked_phase is Phase.ACTION


# -- purity --------------------------------------------------------------------------


def test_apply_and_due_calls_are_pure() -> None:
    p = plan("a", par("b", "c"))
    state = start(p, T0)
    outcome = CallOutcome(0, Phase.ACTION, 1, OK, result={"x": 1})

    first = apply(p, state, outcome, T0, "k")
    second = apply(p, state, outcome, T0, "k")

    assert first == second
    assert state == start(p, T0)  # the input was not changed
    assert due_calls(p, first.state, T0) == due_calls(p, first.state, T0)
    assert wake_at(p, first.state) == T0


# -- the tables ---------------------------------------------------------------------


def reachable(table: Mapping[Any, frozenset[Any]], origin: Any) -> set[Any]:
    seen, todo = {origin}, [origin]
    while todo:
        for target in table[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_every_saga_status_has_an_entry_and_final_ones_no_exit() -> None:
    assert set(SAGA_TRANSITIONS) == set(SagaStatus)
    assert set(FINAL_STATUSES) == {S.COMPLETED, S.COMPENSATED}
    assert set(ACTIVE_STATUSES) == {S.RUNNING, S.COMPENSATING}
    for status, targets in SAGA_TRANSITIONS.items():
        assert targets <= set(SagaStatus)
        assert status not in targets
        assert (not targets) == (status in FINAL_STATUSES), status
    assert reachable(SAGA_TRANSITIONS, S.RUNNING) == set(SagaStatus)
    for status in SagaStatus:  # every status can still end
        assert reachable(SAGA_TRANSITIONS, status) & FINAL_STATUSES


def test_every_step_status_has_an_entry_and_compensated_no_exit() -> None:
    assert set(STEP_TRANSITIONS) == set(StepStatus)
    for status, targets in STEP_TRANSITIONS.items():
        assert targets <= set(StepStatus)
        assert status not in targets
        assert (not targets) == (status is St.COMPENSATED), status
    assert reachable(STEP_TRANSITIONS, St.PENDING) == set(StepStatus)
    # a step that succeeded can only be undone, never run again
    assert STEP_TRANSITIONS[St.SUCCEEDED] == {St.COMPENSATING}
