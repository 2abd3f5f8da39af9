"""A stateful model test of the saga machine (Hypothesis ``RuleBasedStateMachine``).

Where ``test_properties`` runs whole sagas with a scripted worker, this test lets
Hypothesis interleave everything that can happen to one saga, one event at a
time, and checks after every event what must hold. The rules: a worker takes the
due calls and answers them at once or later (succeeded, rejected, transient, or
accepted for a callback step); an old call is answered again, late or twice; an
answer arrives for an attempt never sent; a participant completes a callback
step (the current attempt or an old one); time passes (backoffs, callback
timeouts, the deadline); the worker restarts from the stored JSON; a client
cancels; an operator retries or compensates.

The reference model is small and kept apart from the machine's own rules: which
attempts are over (their step left the status that waits for them), which
attempts a participant answered with a definite "no", which attempts were
accepted (202), and the order of the compensation calls. From it follows which
steps may have taken effect (an attempt was armed and got no definite "no"):
those, and only those, are compensated, later stages first. An armed call the
worker never made counts: the machine cannot know whether a crashed worker sent
it, so a step whose stage began is compensated unless every attempt of it was
refused.

Settings are inline, as in ``test_properties``; under CI (``CI=true``)
Hypothesis's own ``ci`` profile makes the run derandomized and keeps no example
database.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from hypothesis import event as statistic
from hypothesis import note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from orchestrator.machine import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    CallbackCompleted,
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
    StepPlan,
    StepState,
    StepStatus,
    Tick,
    apply,
    due_calls,
    start,
    state_from_json,
    state_to_json,
    wake_at,
)
from tests.unit.machine.builders import T0, Element, callback, comp, pivot, plan, retriable

S, St = SagaStatus, StepStatus
ACTION, COMPENSATION = Phase.ACTION, Phase.COMPENSATION
OK, NO, LOST = OutcomeKind.SUCCEEDED, OutcomeKind.REJECTED, OutcomeKind.TRANSIENT
ACCEPTED = OutcomeKind.ACCEPTED
KEY = "saga-model"
CANCEL_REASON = "changed my mind"
TIMEOUT_ERROR = "no completion arrived before the step's timeout"

#: The step statuses of the way back; a step that reached one never goes forward again.
BACKWARD = frozenset({St.COMPENSATING, St.COMPENSATED, St.COMPENSATION_FAILED})

#: Where one event may take the saga (several edges at once: running to compensated
#: when nothing needs undoing). ``failed`` moves only by an operator, see ``check_move``.
MOVES: dict[SagaStatus, frozenset[SagaStatus]] = {
    S.RUNNING: frozenset({S.RUNNING, S.COMPENSATING, S.COMPENSATED, S.COMPLETED, S.FAILED}),
    S.COMPENSATING: frozenset({S.COMPENSATING, S.COMPENSATED, S.FAILED}),
    S.FAILED: frozenset({S.FAILED}),
    S.COMPLETED: frozenset({S.COMPLETED}),
    S.COMPENSATED: frozenset({S.COMPENSATED}),
}
#: Where an operator's accepted retry or compensate may take a ``failed`` saga: time
#: passes after the request, so the deadline or a callback timeout may act at once.
OPERATOR_MOVES = frozenset({S.RUNNING, S.COMPENSATING, S.COMPENSATED, S.FAILED})


# -- plans ---------------------------------------------------------------------------

#: Small budgets and short waits, so that every timer fires within a few rules.
retry_plans = st.builds(
    RetryPlan,
    max_attempts=st.integers(1, 3),
    initial_backoff_ms=st.sampled_from([0, 100, 1_000]),
    max_backoff_ms=st.just(2_000),
    multiplier=st.just(2.0),
    jitter=st.sampled_from([0.0, 0.3]),
)


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    """One or two compensatable steps, maybe a parallel group of two, maybe a pivot
    followed by up to two retriable steps; some compensatable steps complete by callback."""
    names = iter(f"s{i}" for i in range(10))

    def compensatable() -> StepPlan:
        name, retry = next(names), draw(retry_plans)
        timeout = draw(st.sampled_from([None, None, 0.5, 5.0]))
        return comp(name, retry) if timeout is None else callback(name, timeout, retry)

    elements: list[Element] = [compensatable() for _ in range(draw(st.integers(1, 2)))]
    if draw(st.booleans()):
        group = (compensatable(), compensatable())
        elements.insert(draw(st.integers(0, len(elements))), group)
    if draw(st.sampled_from([True, True, False])):
        elements.append(pivot(next(names), draw(retry_plans)))
        elements.extend(
            retriable(next(names), draw(retry_plans)) for _ in range(draw(st.integers(0, 2)))
        )
    return plan(
        *elements,
        park=draw(st.booleans()),
        deadline_s=draw(st.sampled_from([None, None, None, 2.0, 15.0])),
    )


# -- the model -------------------------------------------------------------------------


def counter(step: StepState, phase: Phase) -> int:
    """The attempt of ``phase`` the step is at (the number its next answer must carry)."""
    return step.attempts if phase is ACTION else step.compensation_attempts


def roundtrip(state: SagaState) -> SagaState:
    """The state as a restarted worker reads it back from the saga row."""
    return state_from_json(json.loads(json.dumps(state_to_json(state))))


class SagaModel(RuleBasedStateMachine):
    """One saga, driven one event at a time, with a reference model of what must hold."""

    def __init__(self) -> None:
        super().__init__()
        self.plan: Plan
        self.state: SagaState
        self.now: datetime = T0
        #: Calls the worker made and has not folded the answer of yet.
        self.in_flight: list[CallCommand] = []
        #: Every call the worker ever made (late answers and completions come from these).
        self.made: list[CallCommand] = []
        #: (step, phase, attempt) whose step left the status that waited for it: any
        #: answer to them is stale (a new wait always starts a new attempt).
        self.over: set[tuple[int, Phase, int]] = set()
        #: (step, attempt) a participant answered with a definite "no" (the machine took it).
        self.refused: set[tuple[int, int]] = set()
        #: (step, attempt) whose 202 the machine took: the participant works on it.
        self.accepted_202: set[tuple[int, int]] = set()
        #: The stage of every compensation call made, in order.
        self.compensation_stages: list[int] = []
        #: Steps whose compensation was called: their action is never called again.
        self.compensation_called: set[int] = set()
        #: The answers other than success this run draws from (a calm run gets far).
        self.failures: list[OutcomeKind] = []
        #: Which situations the run went through (``--hypothesis-show-statistics``).
        self.seen: set[str] = set()

    # -- set-up ----------------------------------------------------------------------

    @initialize(p=plans(), weather=st.sampled_from(["calm", "flaky", "stormy"]))
    def begin(self, p: Plan, weather: str) -> None:
        self.plan = p
        self.failures = {"calm": [], "flaky": [LOST, NO], "stormy": [LOST, NO] * 3}[weather]
        self.state = start(p, self.now)
        note(f"plan: {p}")

    # -- the worker ------------------------------------------------------------------

    def due(self) -> tuple[CallCommand, ...]:
        return due_calls(self.plan, self.state, self.now)

    def kinds(self, call: CallCommand, failures: bool = False) -> st.SearchStrategy[OutcomeKind]:
        """Mostly successes, so that sagas get far; a callback step's action may be accepted.
        ``failures`` includes them whatever the weather (a second worker's copy of a call)."""
        bad = [LOST, NO] if failures else self.failures
        if call.phase is ACTION and self.plan.steps[call.step].callback:
            return st.sampled_from([OK, ACCEPTED, OK, ACCEPTED, *bad])
        return st.sampled_from([OK, OK, OK, *bad])

    def answer(self, call: CallCommand, kind: OutcomeKind) -> CallOutcome:
        name = self.plan.steps[call.step].name
        return CallOutcome(
            call.step,
            call.phase,
            call.attempt,
            kind,
            result={"by": name} if kind is OK else None,
            error=None if kind in (OK, ACCEPTED) else f"{name}: {kind.value}",
        )

    def make(self, call: CallCommand) -> None:
        """The worker makes ``call``: check it is one the design allows."""
        step, policy = self.state.steps[call.step], self.plan.steps[call.step]
        assert call.step in self.plan.stages[self.state.stage]
        assert call.attempt == counter(step, call.phase)
        assert not step.awaiting_callback, "a step awaiting its callback was called"
        if call.phase is COMPENSATION:
            assert policy.has_compensation
            assert not self.state.pivoted, "compensating after the pivot"
            stage = self.plan.stage_of(call.step)
            assert all(stage <= s for s in self.compensation_stages), "compensation out of order"
            self.compensation_stages.append(stage)
            self.compensation_called.add(call.step)
        else:
            assert call.step not in self.compensation_called, "an action after its compensation"
            deadline = self.state.deadline_at
            if policy.kind is StepKind.COMPENSATABLE and deadline is not None:
                assert self.now < deadline, "a compensatable step called after the deadline"
            if policy.kind is StepKind.PIVOT and deadline is not None:
                # A pivot entered before the deadline may still be called after it.
                assert step.started_at is not None
                assert step.started_at < deadline
        self.made.append(call)

    @precondition(lambda self: self.due())
    @rule(data=st.data())
    def worker_answers_at_once(self, data: st.DataObject) -> None:
        call = data.draw(st.sampled_from(self.due()), label="call")
        self.make(call)
        decision = self.send(self.answer(call, data.draw(self.kinds(call), label="kind")))
        assert decision.accepted, f"the answer to a due call was refused: {decision.reason}"

    @precondition(lambda self: self.due())
    @rule(data=st.data())
    def worker_round(self, data: st.DataObject) -> None:
        """The worker makes every due call, then folds the answers in, in call order."""
        calls = self.due()
        for call in calls:
            self.make(call)
        kinds = [data.draw(self.kinds(call), label="kind") for call in calls]
        for call, kind in zip(calls, kinds, strict=True):
            self.send(self.answer(call, kind))

    @precondition(lambda self: self.due())
    @rule()
    def worker_takes_due_calls(self) -> None:
        for call in self.due():
            self.make(call)
            self.in_flight.append(call)

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data(), twice=st.booleans())
    def answer_arrives(self, data: st.DataObject, twice: bool) -> None:
        """An answer the worker waited for; ``twice`` keeps the call (a duplicate later)."""
        index = data.draw(st.integers(0, len(self.in_flight) - 1), label="in flight")
        call = self.in_flight[index] if twice else self.in_flight.pop(index)
        self.send(self.answer(call, data.draw(self.kinds(call), label="kind")))

    @rule(data=st.data(), which=st.sampled_from(["recent", "old", "never sent"]))
    def stray_answer(self, data: st.DataObject, which: str) -> None:
        """A second worker answers its copy of a recent call, a paused one a call made
        long ago; or an answer comes for an attempt no call carried (always refused)."""
        never_sent = which == "never sent" or not self.made
        if never_sent:
            index = data.draw(st.integers(0, len(self.plan.steps) - 1), label="step")
            phase = data.draw(st.sampled_from([ACTION, COMPENSATION]), label="phase")
            call = CallCommand(index, phase, counter(self.state.steps[index], phase) + 1)
        else:
            calls = self.made[-2:] if which == "recent" else self.made
            call = data.draw(st.sampled_from(calls), label="stray call")
        kind = data.draw(self.kinds(call, failures=True), label="kind")
        decision = self.send(self.answer(call, kind))
        if never_sent:
            assert not decision.accepted

    @rule()
    def worker_restarts(self) -> None:
        """The worker dies; another loads the state from its JSON and carries on."""
        restored = roundtrip(self.state)
        assert restored == self.state
        assert due_calls(self.plan, restored, self.now) == self.due()
        assert wake_at(self.plan, restored) == wake_at(self.plan, self.state)
        self.state = restored
        self.in_flight.clear()  # their answers are lost with the worker

    # -- participants that complete by callback ----------------------------------------

    def callback_calls(self) -> list[CallCommand]:
        return [c for c in self.made if c.phase is ACTION and self.plan.steps[c.step].callback]

    @precondition(lambda self: self.callback_calls())
    @rule(data=st.data(), ok=st.booleans())
    def completion_arrives(self, data: st.DataObject, ok: bool) -> None:
        """A participant completes a call it got (maybe an old attempt, maybe again)."""
        call = data.draw(st.sampled_from(self.callback_calls()), label="completed call")
        name = self.plan.steps[call.step].name
        self.send(
            CallbackCompleted(
                call.step,
                call.attempt,
                OK if ok else NO,
                result={"by": name, "via": "callback"} if ok else None,
                error=None if ok else f"{name}: refused by callback",
            )
        )

    # -- time ------------------------------------------------------------------------

    @rule(seconds=st.sampled_from([None, None, 0.05, 0.3, 1.0, 5.0]))
    def time_passes(self, seconds: float | None) -> None:
        """A little time, a lot, or (``None``) until the saga's ``wake_at``, then a Tick."""
        wake = wake_at(self.plan, self.state)
        if seconds is not None:
            self.now += timedelta(seconds=seconds)
        elif wake is not None:
            self.now = max(self.now, wake)
        assert self.send(Tick()).accepted

    # -- requests from outside ------------------------------------------------------------

    #: A cancel ends most runs, so it comes less often than the operator's requests
    #: (which a saga that is not parked refuses, changing nothing).
    @rule(request=st.sampled_from(["retry", "compensate", "cancel", "retry", "compensate"]))
    def request(self, request: str) -> None:
        {
            "cancel": self.client_cancels,
            "retry": self.operator_retries,
            "compensate": self.operator_compensates,
        }[request]()

    def client_cancels(self) -> None:
        before = self.state
        decision = self.send(CancelRequested(CANCEL_REASON))
        takes = (
            before.status is S.RUNNING
            and not before.pivoted
            and not self.pivot_is(before, St.RUNNING)
        )
        assert decision.accepted == takes, decision.reason
        if decision.accepted:
            after = decision.state
            assert after.status in (S.COMPENSATING, S.COMPENSATED)
            assert after.error is not None
            assert after.error.message == CANCEL_REASON

    def operator_retries(self) -> None:
        before = self.state
        decision = self.send(RetryRequested())
        assert decision.accepted == (before.status is S.FAILED), decision.reason
        if not decision.accepted:
            return
        after = decision.state
        if before.parked_phase is COMPENSATION:
            assert after.status is S.COMPENSATING
        elif after.status is not S.RUNNING:
            # Only time could have turned it at once: the deadline or a callback's wait.
            deadline = after.deadline_at
            expired = any(
                s.awaiting_callback and s.due_at is not None and s.due_at <= self.now
                for s in (before.steps[i] for i in self.plan.stages[before.stage])
            )
            assert expired or (deadline is not None and self.now >= deadline), after

    def operator_compensates(self) -> None:
        before = self.state
        decision = self.send(CompensateRequested())
        takes = (
            before.status is S.FAILED
            and before.parked_phase is ACTION
            and not before.pivoted
            and not self.pivot_is(before, St.FAILED)
        )
        assert decision.accepted == takes, decision.reason
        if decision.accepted:
            assert decision.state.status in (S.COMPENSATING, S.COMPENSATED)

    def pivot_is(self, state: SagaState, status: StepStatus) -> bool:
        """Whether the current stage is the pivot's and the pivot has ``status``."""
        return any(
            self.plan.steps[i].kind is StepKind.PIVOT and state.steps[i].status is status
            for i in self.plan.stages[state.stage]
        )

    # -- every event -------------------------------------------------------------------

    def send(self, event: Event) -> Decision:
        before = self.state
        decision = apply(self.plan, before, event, self.now, KEY)
        assert apply(self.plan, before, event, self.now, KEY) == decision, "apply is not pure"
        after = decision.state
        note(
            f"{(self.now - T0).total_seconds():8.3f}s {event} -> "
            f"{'ok' if decision.accepted else decision.reason}: {after.status.value} "
            f"stage {after.stage} {[s.status.value for s in after.steps]}"
        )
        if not decision.accepted:
            # The state is always up to date (see ``up_to_date``): nothing may change.
            assert after == before, "a refused event changed the state"
        if self.must_refuse(before, event):
            assert not decision.accepted, f"a stale or impossible event was taken: {event}"
        self.check_move(before, event, decision)
        self.check_steps(before, after)
        self.learn(before, event, decision)
        self.observe(before, event, decision)
        self.state = after
        return decision

    def must_refuse(self, before: SagaState, event: Event) -> bool:
        """What the model knows to be stale, repeated or impossible."""
        if before.status in FINAL_STATUSES:
            return not isinstance(event, Tick)
        if isinstance(event, CallOutcome):
            phase, kind = event.phase, event.kind
            wanted = S.RUNNING if phase is ACTION else S.COMPENSATING
            if before.status is not wanted:
                return True
        elif isinstance(event, CallbackCompleted):
            phase, kind = ACTION, event.kind
            if before.status is not S.RUNNING and before.parked_phase is not ACTION:
                return True
        else:
            return False
        at = counter(before.steps[event.step], phase)
        return (
            (event.step, phase, event.attempt) in self.over
            or event.attempt != at  # superseded, or never sent
            # The participant holds the job: only its definite answer counts.
            or (
                phase is ACTION
                and kind in (ACCEPTED, LOST)
                and (event.step, event.attempt) in self.accepted_202
            )
        )

    def check_move(self, before: SagaState, event: Event, decision: Decision) -> None:
        after = decision.state
        operator = isinstance(event, RetryRequested | CompensateRequested) and decision.accepted
        allowed = OPERATOR_MOVES if operator else MOVES[before.status]
        assert after.status in allowed, f"{before.status} -> {after.status} on {event}"
        if before.status in FINAL_STATUSES:
            assert after == before, "an ended saga changed"
        if before.pivoted:
            assert after.pivoted, "the pivot was forgotten"
        if before.status in (S.COMPENSATING, S.COMPENSATED) or before.parked_phase is COMPENSATION:
            # Once turned back, a saga never goes forward again.
            assert after.status in (S.COMPENSATING, S.COMPENSATED, S.FAILED)
            assert after.status is not S.FAILED or after.parked_phase is COMPENSATION

    def check_steps(self, before: SagaState, after: SagaState) -> None:
        """Per step: attempt numbers only grow, one at a time; the way back is one way."""
        for old, new in zip(before.steps, after.steps, strict=True):
            for phase in (ACTION, COMPENSATION):
                assert counter(old, phase) <= counter(new, phase) <= counter(old, phase) + 1
            if old.status in BACKWARD:
                assert new.status in BACKWARD, f"{old.status} -> {new.status}"
            if old.status is St.COMPENSATED:
                assert new.status is St.COMPENSATED
            if old.status is St.SUCCEEDED:
                assert new.status in (St.SUCCEEDED, St.COMPENSATING)

    def learn(self, before: SagaState, event: Event, decision: Decision) -> None:
        """Update the reference model with what this event did."""
        after = decision.state
        for index, (old, new) in enumerate(zip(before.steps, after.steps, strict=True)):
            if old.status is St.RUNNING and new.status is not St.RUNNING:
                self.over.add((index, ACTION, old.attempts))
            if old.status is St.COMPENSATING and new.status is not St.COMPENSATING:
                self.over.add((index, COMPENSATION, old.compensation_attempts))
        if not decision.accepted:
            return
        if isinstance(event, CallbackCompleted) or (
            isinstance(event, CallOutcome) and event.phase is ACTION
        ):
            if event.kind is NO:
                self.refused.add((event.step, event.attempt))
            if event.kind is ACCEPTED and self.plan.steps[event.step].callback:
                self.accepted_202.add((event.step, event.attempt))

    def observe(self, before: SagaState, event: Event, decision: Decision) -> None:
        """Note the situations worth reaching, for the statistics."""
        name = type(event).__name__
        if decision.accepted and not isinstance(event, Tick | CallOutcome):
            self.seen.add(f"{name} taken" + (" while parked" if before.status is S.FAILED else ""))
        if isinstance(event, CallOutcome) and event.kind is ACCEPTED and decision.accepted:
            self.seen.add("202 taken")
        if isinstance(event, CallOutcome | CallbackCompleted) and not decision.accepted:
            self.seen.add(f"{name} refused: {decision.reason}")
        if decision.state.pivoted and not before.pivoted:
            self.seen.add("pivoted")
        if any(s.status is St.REJECTED and s.uncertain for s in decision.state.steps):
            self.seen.add("rejected after an attempt without answer")

    def teardown(self) -> None:
        if hasattr(self, "state"):  # not when the plan could not even be drawn
            statistic(f"ended {self.state.status.value}")
            for label in sorted(self.seen):
                statistic(label)

    # -- what holds after every rule ---------------------------------------------------------

    def may_have_taken_effect(self, index: int) -> bool:
        """Some armed attempt of the step got no definite "no" (and it can be undone)."""
        if not self.plan.steps[index].has_compensation:
            return False
        armed = range(1, self.state.steps[index].attempts + 1)
        return any((index, attempt) not in self.refused for attempt in armed)

    @invariant()
    def survives_its_json(self) -> None:
        assert roundtrip(self.state) == self.state

    @invariant()
    def up_to_date(self) -> None:
        """Time was folded in at ``now``: the deadline and callback timeouts have acted."""
        ticked = apply(self.plan, self.state, Tick(), self.now, KEY)
        assert ticked.accepted
        assert ticked.state == self.state, "a Tick at the same time changed the state"

    @invariant()
    def rests_or_waits(self) -> None:
        state, wake = self.state, wake_at(self.plan, self.state)
        if state.status in ACTIVE_STATUSES:
            assert wake is not None, "an active saga must say when to wake"
            assert self.due() or wake > self.now, "nothing due, yet it wants to wake now"
        else:
            assert wake is None
            assert due_calls(self.plan, state, self.now + timedelta(days=1)) == ()
        if state.status is S.FAILED:
            assert state.error is not None
            assert state.parked_phase is not None
        else:
            assert state.parked_phase is None
        if state.status in (S.RUNNING, S.COMPLETED):
            assert state.error is None
        if state.status is S.COMPLETED:
            assert all(s.status is St.SUCCEEDED for s in state.steps)
            assert set(state.results(self.plan)) == {s.name for s in self.plan.steps}

    @invariant()
    def pivot_is_the_point_of_no_return(self) -> None:
        state = self.state
        if state.pivoted or self.pivot_is(state, St.FAILED):
            assert state.status not in (S.COMPENSATING, S.COMPENSATED)
        if state.pivoted:
            assert not self.compensation_stages, "compensated before the pivot, then went on"
        pivots = [i for i, p in enumerate(self.plan.steps) if p.kind is StepKind.PIVOT]
        assert state.pivoted == any(state.steps[i].status is St.SUCCEEDED for i in pivots)

    @invariant()
    def deadline_and_waits_are_enforced(self) -> None:
        state, deadline = self.state, self.state.deadline_at
        if state.status is S.RUNNING and not state.pivoted and deadline is not None:
            assert self.now < deadline or self.pivot_is(state, St.RUNNING)
        for index, step in enumerate(state.steps):
            if not step.awaiting_callback:
                continue
            assert self.plan.steps[index].callback
            assert step.status is St.RUNNING
            assert index in self.plan.stages[state.stage]
            assert state.status in (S.RUNNING, S.FAILED)
            assert step.due_at is not None
            assert step.attempts >= 1
            if state.status is S.RUNNING:
                assert step.due_at > self.now, "a wait outlived its timeout"
                # The participant holds this attempt's call: it must still be answerable.
                assert (index, step.attempts) in self.accepted_202, step

    @invariant()
    def budgets_are_kept(self) -> None:
        for policy, step in zip(self.plan.steps, self.state.steps, strict=True):
            budget = policy.retry.max_attempts
            if step.status is St.PENDING:
                assert step.attempts == step.compensation_attempts == 0
            elif step.status is St.RUNNING and policy.kind is not StepKind.RETRIABLE:
                assert 1 <= step.attempts - step.budget_from <= budget, (policy, step)
            elif step.status is St.FAILED and step.last_error != TIMEOUT_ERROR:
                assert step.attempts - step.budget_from == budget, (policy, step)
            elif step.status is St.COMPENSATING:
                assert 1 <= step.compensation_attempts - step.budget_from <= budget

    @invariant()
    def compensates_what_may_have_taken_effect(self) -> None:
        """Later stages first; what surely did nothing is left alone."""
        state = self.state
        backward = state.status in (S.COMPENSATING, S.COMPENSATED) or (
            state.parked_phase is COMPENSATION
        )
        for index, step in enumerate(state.steps):
            if not self.may_have_taken_effect(index):
                assert step.status not in BACKWARD, f"{self.plan.steps[index].name} undone"
                assert step.compensation_attempts == 0
                continue
            if not backward:
                assert step.status not in BACKWARD
                continue
            stage = self.plan.stage_of(index)
            if state.status is S.COMPENSATED or stage > state.stage:
                assert step.status is St.COMPENSATED, f"{self.plan.steps[index].name} not undone"
            elif stage == state.stage:
                assert step.status in BACKWARD
            else:
                assert step.status is St.SUCCEEDED


SagaModel.TestCase.settings = settings(max_examples=250, stateful_step_count=60, deadline=None)
test_saga_model = SagaModel.TestCase
