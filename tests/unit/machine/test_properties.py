"""Property tests: random plans driven to the end by random participants.

A simulated worker runs each saga: it makes the calls ``due_calls`` asks for, lets
simulated participants answer them, folds the answers back in (in a random order,
with some latency), sleeps until ``wake_at`` when nothing is due, and now and then
throws in a cancel, a tick, a repeated or impossible outcome, or (for a ``failed``
saga) an operator's retry or compensate. After ``budget`` events every call
succeeds, so the run ends.

The participants are the ground truth, as in ``saga check``: each applies an
effect at most once per step and phase (the idempotency key), answers a repeated
key that took effect with success, may apply an effect and still lose the answer
(a transient failure that did take effect), and refuses an action that arrives
after its compensation (the tombstone).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hypothesis import given, note, settings
from hypothesis import strategies as st

from orchestrator.machine import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    SAGA_TRANSITIONS,
    STEP_TRANSITIONS,
    CallCommand,
    CallOutcome,
    CancelRequested,
    CompensateRequested,
    Decision,
    Event,
    OutcomeKind,
    Phase,
    Plan,
    RetryPlan,
    RetryRequested,
    SagaState,
    SagaStatus,
    StepKind,
    StepStatus,
    Tick,
    apply,
    due_calls,
    start,
    state_from_json,
    state_to_json,
    wake_at,
)
from tests.unit.machine.builders import T0, Element, comp, pivot, plan, retriable

S, St = SagaStatus, StepStatus
ACTION, COMPENSATION = Phase.ACTION, Phase.COMPENSATION
OK, NO, LOST = OutcomeKind.SUCCEEDED, OutcomeKind.REJECTED, OutcomeKind.TRANSIENT
KEY = "saga-7"
#: No run may take more events than this, forced successes included.
HARD_LIMIT = 3_000


# -- plans ---------------------------------------------------------------------------

retry_plans = st.builds(
    RetryPlan,
    max_attempts=st.integers(1, 4),
    initial_backoff_ms=st.integers(0, 500),
    max_backoff_ms=st.integers(0, 2_000),
    multiplier=st.floats(1.0, 3.0),
    jitter=st.floats(0.0, 0.5),
)


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    """Valid plans: compensatable stages, optionally a pivot then retriable stages.

    1 to 6 stages; a stage is a single step or a parallel group of 2 or 3.
    """
    with_pivot = draw(st.booleans())
    before = draw(st.integers(0, 4) if with_pivot else st.integers(1, 6))
    after = draw(st.integers(0, 5 - before)) if with_pivot else 0
    names = iter(f"s{i}" for i in range(100))

    def stage(make: Any) -> Element:
        size = draw(st.sampled_from([1, 1, 2, 3]))
        members = tuple(make(next(names), draw(retry_plans)) for _ in range(size))
        return members if size > 1 else members[0]

    elements = [stage(comp) for _ in range(before)]
    if with_pivot:
        elements.append(pivot(next(names), draw(retry_plans)))
        elements.extend(stage(retriable) for _ in range(after))
    return plan(
        *elements,
        park=draw(st.booleans()),
        deadline_s=draw(st.none() | st.floats(0.5, 60.0)),
    )


# -- the simulated world -------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """A call the worker made."""

    at: datetime
    step: int
    phase: Phase
    attempt: int
    stage: int
    #: Whether the pivot's effect had already taken place (ground truth).
    pivot_applied: bool


@dataclass
class Participants:
    """Every participant's own view: which effects took place."""

    applied: set[tuple[int, Phase]] = field(default_factory=set)
    #: Steps whose compensation reached the participant (the tombstone).
    tombstones: set[int] = field(default_factory=set)
    #: Actions that arrived after their compensation (must never happen).
    late_actions: list[int] = field(default_factory=list)

    def receive(self, call: CallCommand, fate: str) -> OutcomeKind:
        """``fate``: ok, no, lost_request (no effect), lost_response (effect, no answer)."""
        key = (call.step, call.phase)
        if call.phase is ACTION and call.step in self.tombstones:
            self.late_actions.append(call.step)
            return NO
        if fate != "lost_request" and call.phase is COMPENSATION:
            self.tombstones.add(call.step)
        if key in self.applied:  # a repeated key that took effect answers success
            return LOST if fate.startswith("lost") else OK
        if fate in ("ok", "lost_response"):
            self.applied.add(key)
        return {"ok": OK, "no": NO}.get(fate, LOST)


def reachable(table: Mapping[Any, frozenset[Any]], origin: Any) -> set[Any]:
    seen, todo = {origin}, [origin]
    while todo:
        for target in table[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


class Simulation:
    def __init__(self, plan: Plan, rnd: random.Random, flakiness: float, budget: int) -> None:
        self.plan, self.rnd, self.flakiness, self.budget = plan, rnd, flakiness, budget
        self.now = T0
        self.state = start(plan, T0)
        self.events = 0
        self.calls: list[Call] = []
        self.accepted: list[CallOutcome] = []
        self.participants = Participants()
        self.rescue: bool | None = None
        self.pivot = next((i for i, s in enumerate(plan.steps) if s.kind is StepKind.PIVOT), None)
        #: One line per event, shown when a property fails.
        self.transcript: list[str] = []
        self.check_state(self.state)

    @property
    def forced(self) -> bool:
        return self.events >= self.budget

    # -- driving -------------------------------------------------------------------

    def run(self) -> SagaState:
        while self.state.status not in FINAL_STATUSES:
            if self.state.status is S.FAILED:
                if not self.operator():
                    break
                continue
            calls = due_calls(self.plan, self.state, self.now)
            if calls:
                self.round(calls)
            else:
                wake = wake_at(self.plan, self.state)
                assert wake is not None, "an active saga must have a wake_at"
                assert wake > self.now, "nothing is due but the saga wants to wake now"
                self.now = wake
                self.send(Tick())
        return self.state

    def round(self, calls: tuple[CallCommand, ...]) -> None:
        """Make the due calls, then fold their answers in, in any order."""
        outcomes = []
        for call in calls:
            self.calls.append(
                Call(
                    self.now,
                    call.step,
                    call.phase,
                    call.attempt,
                    self.plan.stage_of(call.step),
                    pivot_applied=(self.pivot, ACTION) in self.participants.applied,
                )
            )
            kind = self.participants.receive(call, self.fate(call.phase))
            name = self.plan.steps[call.step].name
            outcomes.append(
                CallOutcome(
                    call.step,
                    call.phase,
                    call.attempt,
                    kind,
                    result={"by": name} if kind is OK else None,
                    error=None if kind is OK else f"{name}: {kind.value}",
                )
            )
        self.rnd.shuffle(outcomes)
        for outcome in outcomes:
            self.now += timedelta(seconds=self.rnd.choice([0, 0, 0.01, 0.3, 2.0]))
            if not self.forced and self.rnd.random() < 0.15:
                self.interfere()
            self.send(outcome)

    def fate(self, phase: Phase) -> str:
        if self.forced:
            return "ok"
        f = self.flakiness if phase is ACTION else self.flakiness / 3
        no = f / 3 if phase is ACTION else f / 6
        weights = [1 - f, no, (f - no) / 2, (f - no) / 2]
        return self.rnd.choices(["ok", "no", "lost_request", "lost_response"], weights)[0]

    def interfere(self) -> None:
        """Something else happens while the answers come back."""
        what = self.rnd.choice(["cancel", "tick", "repeat", "impossible", "operator"])
        if what == "cancel":
            self.send(CancelRequested("changed my mind"))
        elif what == "tick":
            self.send(Tick())
        elif what == "repeat" and self.accepted:
            repeated = self.rnd.choice(self.accepted)
            assert not self.send(repeated).accepted, f"a repeated outcome was taken: {repeated}"
        elif what == "impossible":
            index = self.rnd.randrange(len(self.plan.steps))
            step, phase = self.state.steps[index], self.rnd.choice([ACTION, COMPENSATION])
            attempt = (step.attempts if phase is ACTION else step.compensation_attempts) + 1
            outcome = CallOutcome(index, phase, attempt, self.rnd.choice([OK, NO, LOST]))
            assert not self.send(outcome).accepted, f"an unsent attempt was taken: {outcome}"
        elif what == "operator":
            requests: list[Event] = [RetryRequested(), CompensateRequested()]
            self.send(self.rnd.choice(requests))

    def operator(self) -> bool:
        """A person looks at a ``failed`` saga; ``False`` when they leave it parked."""
        assert due_calls(self.plan, self.state, self.now + timedelta(days=1)) == ()
        assert wake_at(self.plan, self.state) is None
        assert self.state.error is not None
        assert self.state.parked_phase is not None
        if self.forced:
            if self.rescue is None:
                self.rescue = self.rnd.random() < 0.8
            if self.rescue:
                assert self.send(RetryRequested()).accepted
            return self.rescue
        choice = self.rnd.choices(["retry", "compensate", "rescue", "leave"], [3, 3, 2, 1])[0]
        if choice == "leave":
            return False
        if choice == "rescue":  # retry, and every call succeeds from now on
            self.budget, self.rescue = self.events, True
            return self.operator()
        self.now += timedelta(seconds=self.rnd.choice([0, 1, 30]))
        self.send(RetryRequested() if choice == "retry" else CompensateRequested())
        return True

    # -- checking every event --------------------------------------------------------

    def send(self, event: Event) -> Decision:
        self.events += 1
        assert self.events < HARD_LIMIT, "the saga does not end"
        before = self.state
        decision = apply(self.plan, before, event, self.now, KEY)
        assert apply(self.plan, before, event, self.now, KEY) == decision, "apply is not pure"
        after = decision.state
        self.transcript.append(
            f"{(self.now - T0).total_seconds():9.3f}s {self.describe(event)} -> "
            f"{'ok' if decision.accepted else decision.reason}: {after.status.value} "
            f"stage {after.stage} {[s.status.value for s in after.steps]}"
            + (f" error: {after.error.message}" if after.error else "")
        )
        self.check_transition(before, event, decision)
        self.check_state(after)
        self.state = after
        if decision.accepted and isinstance(event, CallOutcome):
            self.accepted.append(event)
        return decision

    def describe(self, event: Event) -> str:
        if isinstance(event, CallOutcome):
            name = self.plan.steps[event.step].name
            return f"{name}.{event.phase.value}#{event.attempt} {event.kind.value}"
        return type(event).__name__

    def check_transition(self, before: SagaState, event: Event, decision: Decision) -> None:
        after = decision.state
        assert after.status in reachable(SAGA_TRANSITIONS, before.status)
        for old, new in zip(before.steps, after.steps, strict=True):
            assert new.status in reachable(STEP_TRANSITIONS, old.status), (old, new)
        assert (decision.reason is None) == decision.accepted
        if not decision.accepted:
            deadline = self.deadline_enforced(before, after)
            assert after == before or deadline, f"{event} was refused but changed the state"
        if before.pivoted:
            assert after.pivoted
        if isinstance(event, CancelRequested):
            cancellable = before.status is S.RUNNING and not before.pivoted
            if decision.accepted:
                assert cancellable
                assert after.status in (S.COMPENSATING, S.COMPENSATED)
            elif cancellable and not self.deadline_enforced(before, after):
                assert self.pivot_in_flight(before), decision.reason
        if isinstance(event, RetryRequested | CompensateRequested) and decision.accepted:
            assert before.status is S.FAILED
        if isinstance(event, CompensateRequested) and decision.accepted:
            assert not before.pivoted

    def deadline_enforced(self, before: SagaState, after: SagaState) -> bool:
        return (
            before.status is S.RUNNING
            and after.status in (S.COMPENSATING, S.COMPENSATED)
            and after.error is not None
            and after.error.message == "deadline passed"
            and after.deadline_at is not None
            and self.now >= after.deadline_at
        )

    def pivot_in_flight(self, state: SagaState) -> bool:
        return self.pivot is not None and state.steps[self.pivot].status is St.RUNNING

    def check_state(self, state: SagaState) -> None:
        if state.status in ACTIVE_STATUSES:
            assert wake_at(self.plan, state) is not None, "an active saga must have a wake_at"
        else:
            assert due_calls(self.plan, state, self.now + timedelta(days=1)) == ()
        if state.pivoted:
            assert state.status not in (S.COMPENSATING, S.COMPENSATED)
        for policy, step in zip(self.plan.steps, state.steps, strict=True):
            budget = policy.retry.max_attempts
            if step.status is St.RUNNING and policy.kind is not StepKind.RETRIABLE:
                assert 1 <= step.attempts - step.budget_from <= budget, (policy, step)
            elif step.status is St.FAILED:  # gave up: the whole budget was used
                assert step.attempts - step.budget_from == budget, (policy, step)
            elif step.status is St.COMPENSATING:
                assert 1 <= step.compensation_attempts - step.budget_from <= budget
        assert state_from_json(state_to_json(state)) == state


# -- the properties at the end -----------------------------------------------------------


def check_outcome(sim: Simulation) -> None:
    plan, state, truth = sim.plan, sim.state, sim.participants
    assert state.status in (S.COMPLETED, S.COMPENSATED, S.FAILED)
    if sim.rescue:
        assert state.status in FINAL_STATUSES, "a rescued saga must end"

    if state.status is S.COMPLETED:
        assert all(s.status is St.SUCCEEDED for s in state.steps)
        assert all((i, ACTION) in truth.applied for i in range(len(plan.steps)))
        assert not any(c.phase is COMPENSATION for c in sim.calls)

    if state.status is S.COMPENSATED:
        assert sim.pivot is None or (sim.pivot, ACTION) not in truth.applied
        seen = {
            o.step for o in sim.accepted if o.phase is ACTION and o.kind in (OK, LOST)
        }  # what the machine was told may have taken effect
        for i, step in enumerate(plan.steps):
            if not step.has_compensation:
                continue
            if (i, ACTION) in truth.applied or i in seen:
                assert state.steps[i].status is St.COMPENSATED, step.name
                assert (i, COMPENSATION) in truth.applied, step.name

    for event in (Tick(), CancelRequested(), RetryRequested(), CompensateRequested()):
        if state.status in FINAL_STATUSES:
            decision = apply(plan, state, event, sim.now + timedelta(days=1), KEY)
            assert decision.state == state
            assert decision.accepted == isinstance(event, Tick)


def check_calls(sim: Simulation) -> None:
    plan, calls = sim.plan, sim.calls
    assert not sim.participants.late_actions, "an action arrived after its compensation"

    last_attempt: dict[tuple[int, Phase], int] = {}
    compensated: set[int] = set()
    for call in calls:
        key = (call.step, call.phase)
        previous = last_attempt.get(key, 0)
        assert call.attempt in (previous, previous + 1), f"attempt jumped: {call}"
        assert previous or call.attempt == 1
        last_attempt[key] = call.attempt
        if call.phase is COMPENSATION:
            assert plan.steps[call.step].has_compensation
            assert not call.pivot_applied, "compensating after the pivot took effect"
            compensated.add(call.step)
        else:
            assert call.step not in compensated, "an action after its compensation"

    stages = [c.stage for c in calls if c.phase is COMPENSATION]
    assert stages == sorted(stages, reverse=True), "compensations out of reverse order"

    deadline = sim.state.deadline_at
    if deadline is not None:
        # Known bug (see test_deadline_passed_before_the_pivot_started_compensates):
        # the pivot can still start after the deadline, so only earlier steps are checked.
        late = [
            c
            for c in calls
            if c.phase is ACTION
            and plan.steps[c.step].kind is StepKind.COMPENSATABLE
            and c.at >= deadline
        ]
        assert not late, f"steps called after the deadline: {late}"


@settings(max_examples=2_500, deadline=None)
@given(
    plan=plans(),
    seed=st.integers(0, 2**32 - 1),
    flakiness=st.sampled_from([0.0, 0.1, 0.3, 0.6]),
    budget=st.integers(5, 300),
)
def test_random_sagas_keep_every_invariant(
    plan: Plan, seed: int, flakiness: float, budget: int
) -> None:
    sim = Simulation(plan, random.Random(seed), flakiness, budget)
    try:
        sim.run()
        check_outcome(sim)
        check_calls(sim)
    finally:
        note("\n".join(sim.transcript))


# -- the generator reaches what it should --------------------------------------------------


def test_the_simulation_reaches_every_ending() -> None:
    """Guard against a generator that never tests what matters."""
    endings: set[tuple[SagaStatus, bool]] = set()
    rnd = random.Random(1)
    p = plan(
        comp("a", RetryPlan(max_attempts=2, jitter=0.0)),
        (comp("b"), comp("c")),
        pivot("p", RetryPlan(max_attempts=2)),
        retriable("r", RetryPlan(max_attempts=1)),
        park=False,
    )
    for _ in range(300):
        sim = Simulation(p, random.Random(rnd.getrandbits(32)), 0.3, 300)
        try:
            sim.run()
            check_outcome(sim)
            check_calls(sim)
        except BaseException:
            print("\n".join(sim.transcript))
            raise
        endings.add((sim.state.status, sim.state.pivoted))
    assert endings >= {
        (S.COMPLETED, True),
        (S.COMPENSATED, False),
        (S.FAILED, False),
        (S.FAILED, True),
    }


@settings(max_examples=100, deadline=None)
@given(plans())
def test_the_generated_plans_follow_the_definition_rules(p: Plan) -> None:
    """The rules ``orchestrator.definitions`` enforces and the machine relies on."""
    kinds = [p.steps[i].kind for stage in p.stages for i in stage]
    assert 1 <= len(p.stages) <= 6
    assert sorted(i for stage in p.stages for i in stage) == list(range(len(p.steps)))
    assert kinds.count(StepKind.PIVOT) <= 1
    if StepKind.PIVOT in kinds:
        (pivot_stage,) = [s for s in p.stages if p.steps[s[0]].kind is StepKind.PIVOT]
        assert len(pivot_stage) == 1
        first_after = kinds.index(StepKind.PIVOT) + 1
        assert set(kinds[first_after:]) <= {StepKind.RETRIABLE}
    else:
        assert StepKind.RETRIABLE not in kinds
    for step in p.steps:
        assert step.has_compensation == (step.kind is StepKind.COMPENSATABLE)
