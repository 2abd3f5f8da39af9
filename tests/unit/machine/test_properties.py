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

Some compensatable steps complete by callback. Their participant usually takes
the call on (``202``, outcome ``accepted``) as a job that ends in success (the
effect took place when the call was accepted), in refusal, or never, and sends
its completion zero, one or two times, each after a random delay: before the
worker folds the ``accepted`` in, before or after the step's timeout, or to a
saga that is parked or has ended. A repeated call of a job under way is
accepted again (the participant then holds a newer token); a compensation calls
the job off. On top of the invariants above: an awaiting step is never called,
a step that the timeout failed is never completed by that attempt, and a step
that timed out counts as possibly applied (so it is compensated).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hypothesis import event as statistic
from hypothesis import given, note, settings
from hypothesis import strategies as st

from orchestrator.machine import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    SAGA_TRANSITIONS,
    STEP_TRANSITIONS,
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
#: ``last_error`` of a step whose callback did not come in time.
TIMEOUT_ERROR = "no completion arrived before the step's timeout"
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

#: A compensatable step's callback timeout in seconds; ``None`` for an ordinary step.
callback_timeouts = st.sampled_from([None, None, None, None, 0.05, 0.5, 3.0, 20.0])


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    """Valid plans: compensatable stages, optionally a pivot then retriable stages.

    1 to 6 stages; a stage is a single step or a parallel group of 2 or 3. About
    half the compensatable steps complete by callback.
    """
    with_pivot = draw(st.booleans())
    before = draw(st.integers(0, 4) if with_pivot else st.integers(1, 6))
    after = draw(st.integers(0, 5 - before)) if with_pivot else 0
    names = iter(f"s{i}" for i in range(100))

    def stage(make: Any) -> Element:
        size = draw(st.sampled_from([1, 1, 2, 3]))
        members = tuple(make(next(names), draw(retry_plans)) for _ in range(size))
        return members if size > 1 else members[0]

    def compensatable(name: str, retry: RetryPlan) -> StepPlan:
        timeout = draw(callback_timeouts)
        return comp(name, retry) if timeout is None else callback(name, timeout, retry)

    elements = [stage(compensatable) for _ in range(before)]
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


@dataclass(eq=False)
class Job:
    """Work a callback step's participant took on (it answered 202), reported on later."""

    step: int
    #: ``ok`` (the effect took place when the call was accepted), ``no`` or ``hang``.
    result: str
    #: The attempts whose callback tokens the participant holds, oldest first.
    tokens: list[int]
    #: Completions scheduled and not sent yet.
    pending: int = 0
    #: Superseded or called off by the compensation: no more completions.
    cancelled: bool = False


@dataclass
class Participants:
    """Every participant's own view: which effects took place."""

    applied: set[tuple[int, Phase]] = field(default_factory=set)
    #: Steps whose compensation reached the participant (the tombstone).
    tombstones: set[int] = field(default_factory=set)
    #: Actions that arrived after their compensation (must never happen).
    late_actions: list[int] = field(default_factory=list)
    #: Callback steps' work under way, by step.
    jobs: dict[int, Job] = field(default_factory=dict)

    def receive(
        self, call: CallCommand, fate: str, job_result: str | None = None
    ) -> tuple[OutcomeKind, Job | None]:
        """``fate``: ok, no, lost_request (no effect), lost_response (effect, no answer).

        ``job_result`` (callback actions only) makes the participant take the call on
        as a job (answer ``accepted``) that ends ``ok``, ``no`` or ``hang``; a job
        already under way for the step takes the call on instead, whatever its end.
        Without it the participant answers at once, ending any job under way. Also
        returns the job that took the call on (it owes a completion).
        """
        key = (call.step, call.phase)
        if call.phase is ACTION and call.step in self.tombstones:
            self.late_actions.append(call.step)
            return NO, None
        if fate != "lost_request" and call.phase is COMPENSATION:
            self.tombstones.add(call.step)
            self.end_job(call.step)  # the undo calls off any work under way
        if key in self.applied:  # a repeated key that took effect answers success
            return (LOST if fate.startswith("lost") else OK), None
        if fate == "lost_request":
            return LOST, None
        if call.phase is ACTION and job_result is None:
            self.end_job(call.step)  # it answers at once after all: the work ends here
        elif call.phase is ACTION:
            job = self.jobs.get(call.step)
            if job is None:
                job = self.jobs[call.step] = Job(call.step, job_result, [])
                if job_result == "ok":
                    self.applied.add(key)
            job.tokens.append(call.attempt)
            return (LOST if fate == "lost_response" else ACCEPTED), job
        if fate in ("ok", "lost_response"):
            self.applied.add(key)
        return {"ok": OK, "no": NO}.get(fate, LOST), None

    def end_job(self, step: int) -> None:
        job = self.jobs.pop(step, None)
        if job is not None:
            job.cancelled = True


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
        #: Completions the machine took.
        self.completions: list[CallbackCompleted] = []
        #: Completions on their way: (when, order sent, job).
        self.inbox: list[tuple[datetime, int, Job]] = []
        self.order = itertools.count()
        #: (step, attempt) of every wait the step's timeout ended.
        self.timed_out: set[tuple[int, int]] = set()
        #: Which callback situations the run went through (see the coverage test).
        self.seen: set[str] = set()
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
                if self.inbox and self.rnd.random() < 0.5:
                    self.deliver(self.next_delivery())  # a completion reaches a parked saga
                    continue
                if not self.operator():
                    break
                continue
            if self.deliver_due():
                continue
            calls = due_calls(self.plan, self.state, self.now)
            if calls:
                self.round(calls)
            else:
                wake = wake_at(self.plan, self.state)
                assert wake is not None, "an active saga must have a wake_at"
                assert wake > self.now, "nothing is due but the saga wants to wake now"
                if self.inbox and self.next_delivery()[0] <= wake:
                    self.deliver(self.next_delivery())
                    continue
                self.now = wake
                self.send(Tick())
        return self.state

    def drain(self) -> None:
        """Completions still on their way reach the saga after it stopped (an ended one
        refuses them all)."""
        while self.inbox:
            decision = self.deliver(self.next_delivery())
            if decision is not None and self.state.status in FINAL_STATUSES:
                assert not decision.accepted, "an ended saga took a completion"

    # -- callbacks -------------------------------------------------------------------

    def job_result(self, call: CallCommand, fate: str) -> str | None:
        """How a callback step's participant handles ``call``: ``None`` answers at once."""
        if call.phase is not ACTION or not self.plan.steps[call.step].callback:
            return None
        if self.forced or self.rnd.random() < 0.2:
            return None
        if self.rnd.random() < self.flakiness / 4:
            return "hang"
        if fate == "lost_response":
            return self.rnd.choice(["ok", "no", "hang"])
        return "no" if fate == "no" else "ok"

    def schedule(self, job: Job) -> None:
        """The completions ``job`` will send: none, one, or the same one twice."""
        if job.result == "hang":
            return
        count = self.rnd.choices([0, 1, 2], [self.flakiness, 1.0, 0.3])[0]
        timeout = self.plan.steps[job.step].callback_timeout_s
        for _ in range(count):
            delays = [0.0, 0.0, 0.01, 0.3, 2.0, timeout / 2, timeout, timeout * 1.5, timeout * 5]
            at = self.now + timedelta(seconds=self.rnd.choice(delays))
            self.inbox.append((at, next(self.order), job))
            job.pending += 1

    def next_delivery(self) -> tuple[datetime, int, Job]:
        return min(self.inbox, key=lambda entry: (entry[0], entry[1]))

    def deliver_due(self) -> bool:
        """Send the completions due by now; whether there were any."""
        sent = False
        while self.inbox and self.next_delivery()[0] <= self.now:
            self.deliver(self.next_delivery())
            sent = True
        return sent

    def deliver(self, entry: tuple[datetime, int, Job]) -> Decision | None:
        """The participant sends one completion of ``entry``'s job (if not called off)."""
        self.inbox.remove(entry)
        at, _, job = entry
        self.now = max(self.now, at)
        job.pending -= 1
        if job.cancelled and job.result != "ok":
            return None  # the work was called off before it ended: nothing to report
        if job.pending == 0 and job.result == "no" and not job.cancelled:
            self.participants.end_job(job.step)  # reported: the participant forgets it
        attempt = job.tokens[-1] if self.rnd.random() < 0.75 else job.tokens[0]
        name = self.plan.steps[job.step].name
        ok = job.result == "ok"
        completion = CallbackCompleted(
            job.step,
            attempt,
            OK if ok else NO,
            result={"by": name, "via": "callback"} if ok else None,
            error=None if ok else f"{name}: refused by callback",
        )
        return self.send(completion)

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
            fate = self.fate(call.phase)
            kind, job = self.participants.receive(call, fate, self.job_result(call, fate))
            if job is not None:
                self.schedule(job)
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
            self.deliver_due()  # a completion can overtake the worker's 202
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
        elif what == "repeat" and (self.accepted or self.completions):
            repeated: Event = self.rnd.choice([*self.accepted, *self.completions])
            assert not self.send(repeated).accepted, f"a repeated outcome was taken: {repeated}"
            if isinstance(repeated, CallbackCompleted):
                self.seen.add("repeated completion refused")
        elif what == "impossible":
            index = self.rnd.randrange(len(self.plan.steps))
            step, phase = self.state.steps[index], self.rnd.choice([ACTION, COMPENSATION])
            attempt = (step.attempts if phase is ACTION else step.compensation_attempts) + 1
            impossible: Event = CallOutcome(
                index, phase, attempt, self.rnd.choice([OK, NO, LOST, ACCEPTED])
            )
            if self.plan.steps[index].callback and self.rnd.random() < 0.5:
                impossible = (
                    CallbackCompleted(index, step.attempts + 1, self.rnd.choice([OK, NO]))
                    if self.rnd.random() < 0.5  # an attempt never sent
                    else CallbackCompleted(index, step.attempts, self.rnd.choice([LOST, ACCEPTED]))
                )
            assert not self.send(impossible).accepted, (
                f"an impossible event was taken: {impossible}"
            )
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
        if decision.accepted and isinstance(event, CallbackCompleted):
            self.completions.append(event)
        return decision

    def describe(self, event: Event) -> str:
        if isinstance(event, CallOutcome):
            name = self.plan.steps[event.step].name
            return f"{name}.{event.phase.value}#{event.attempt} {event.kind.value}"
        if isinstance(event, CallbackCompleted):
            name = self.plan.steps[event.step].name
            return f"{name}.callback#{event.attempt} {event.kind.value}"
        return type(event).__name__

    def check_transition(self, before: SagaState, event: Event, decision: Decision) -> None:
        after = decision.state
        assert after.status in reachable(SAGA_TRANSITIONS, before.status)
        for old, new in zip(before.steps, after.steps, strict=True):
            assert new.status in reachable(STEP_TRANSITIONS, old.status), (old, new)
        assert (decision.reason is None) == decision.accepted
        if not decision.accepted:
            # A refused event is no more than time passing (deadline, callback timeouts).
            idle = apply(self.plan, before, Tick(), self.now, KEY).state
            assert after == idle, f"{event} was refused but changed the state"
        self.check_callbacks(before, event, decision)
        if before.pivoted:
            assert after.pivoted
        if isinstance(event, CancelRequested):
            cancellable = before.status is S.RUNNING and not before.pivoted
            if decision.accepted:
                assert cancellable
                assert after.status in (S.COMPENSATING, S.COMPENSATED)
                return
            # Time passes before the request: a callback may have timed out first.
            before = apply(self.plan, before, Tick(), self.now, KEY).state
            cancellable = before.status is S.RUNNING and not before.pivoted
            if cancellable and not self.deadline_enforced(before, after):
                assert self.pivot_in_flight(before), decision.reason
        if isinstance(event, RetryRequested | CompensateRequested) and decision.accepted:
            # Time passes first: a callback timing out may have parked the saga just now.
            passed = apply(self.plan, before, Tick(), self.now, KEY).state
            assert S.FAILED in (before.status, passed.status)
        if isinstance(event, CompensateRequested) and decision.accepted:
            assert not before.pivoted

    def check_callbacks(self, before: SagaState, event: Event, decision: Decision) -> None:
        after = decision.state
        answer = isinstance(event, CallbackCompleted) or (
            isinstance(event, CallOutcome) and event.phase is ACTION
        )
        if answer:
            assert isinstance(event, CallOutcome | CallbackCompleted)
            if (event.step, event.attempt) in self.timed_out:
                assert not decision.accepted, f"{event} answered an attempt that timed out"
                self.seen.add("answer after the timeout refused")
        if isinstance(event, CallbackCompleted):
            old, new = before.steps[event.step], after.steps[event.step]
            if decision.accepted:
                assert old.status is St.RUNNING
                assert old.attempts == event.attempt
                assert event.step not in self.participants.tombstones
                assert new.status in (St.SUCCEEDED, St.REJECTED, St.COMPENSATING)
                assert not new.awaiting_callback
                self.seen.add(
                    "completed while waiting"
                    if old.awaiting_callback
                    else "completed before the 202"
                )
                if old.due_at is not None and old.awaiting_callback:
                    assert self.now < old.due_at, "a completion after the timeout was taken"
                if len(self.plan.stages[self.plan.stage_of(event.step)]) > 1:
                    self.seen.add("completed in a parallel group")
            if before.status is S.FAILED:
                old = before.steps[event.step]
                if (
                    old.status is St.RUNNING
                    and old.awaiting_callback
                    and old.attempts == event.attempt
                    and event.kind in (OK, NO)
                    and old.due_at is not None
                    and self.now < old.due_at
                ):
                    # Kept while parked: the operator then knows what the step did.
                    assert decision.accepted, decision.reason
                self.seen.add("completion reached a parked saga")
        if (
            isinstance(event, CallOutcome)
            and event.phase is COMPENSATION
            and decision.accepted
            and after.steps[event.step].status is St.COMPENSATED
            and any(step == event.step for step, _ in self.timed_out)
        ):
            self.seen.add("compensated after a timeout")
        if isinstance(event, CallOutcome) and event.kind is ACCEPTED:
            new = after.steps[event.step]
            if decision.accepted:
                wait = timedelta(seconds=self.plan.steps[event.step].callback_timeout_s)
                assert new.awaiting_callback or new.status is St.COMPENSATING, new
                assert not new.awaiting_callback or new.due_at == self.now + wait
            else:
                self.seen.add("stale 202 refused")
        for index, (old, new) in enumerate(zip(before.steps, after.steps, strict=True)):
            if new.status in (St.SUCCEEDED, St.REJECTED) and new.status is not old.status:
                assert (index, new.attempts) not in self.timed_out, "completed after its timeout"
            answered = answer and decision.accepted and getattr(event, "step", None) == index
            if not (old.status is St.RUNNING and old.awaiting_callback) or answered:
                continue
            if new.finished_at is None:
                continue  # still waiting, or called off by a compensation (cancel, deadline)
            # The wait gave up: for good, and the step may have taken effect.
            assert old.due_at is not None
            assert old.due_at <= self.now, "timed out early"
            assert new.status in (St.FAILED, St.COMPENSATING), new
            assert new.uncertain
            assert not new.awaiting_callback
            assert new.last_error == TIMEOUT_ERROR
            self.timed_out.add((index, old.attempts))
            self.seen.add("timed out")

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
        for index, (policy, step) in enumerate(zip(self.plan.steps, state.steps, strict=True)):
            budget = policy.retry.max_attempts
            if step.status is St.RUNNING and policy.kind is not StepKind.RETRIABLE:
                assert 1 <= step.attempts - step.budget_from <= budget, (policy, step)
            elif step.status is St.FAILED:  # gave up: the whole budget was used, or timed out
                timed_out = (index, step.attempts) in self.timed_out
                assert timed_out or step.attempts - step.budget_from == budget, (policy, step)
            elif step.status is St.COMPENSATING:
                assert 1 <= step.compensation_attempts - step.budget_from <= budget
        self.check_waits(state)
        assert state_from_json(state_to_json(state)) == state

    def check_waits(self, state: SagaState) -> None:
        """Steps awaiting a callback: never called, and never waiting past their timeout."""
        for later in (self.now, self.now + timedelta(days=1)):
            for call in due_calls(self.plan, state, later):
                assert not state.steps[call.step].awaiting_callback, f"{call} awaits a callback"
        wake = wake_at(self.plan, state)
        for index, step in enumerate(state.steps):
            if not step.awaiting_callback:
                continue
            assert self.plan.steps[index].callback
            assert step.status is St.RUNNING
            assert state.status in (S.RUNNING, S.FAILED)
            assert index in self.plan.stages[state.stage]
            assert step.due_at is not None
            if state.status is S.RUNNING:
                assert step.due_at > self.now, "a wait outlived its timeout"
                assert wake is not None
                assert wake <= step.due_at


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
        seen |= {c.step for c in sim.completions if c.kind is OK}
        seen |= {step for step, _ in sim.timed_out}  # accepted, then no word in time
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
        # Nothing new starts after the deadline. A pivot whose stage was entered
        # before it counts as in flight (a worker may call it late, e.g. after a
        # takeover) and goes on; one entered after it would be a bug.
        def entered_late(step: int) -> bool:
            started = sim.state.steps[step].started_at
            return started is not None and started >= deadline

        late = [
            c
            for c in calls
            if c.phase is ACTION
            and c.at >= deadline
            and (
                plan.steps[c.step].kind is StepKind.COMPENSATABLE
                or (plan.steps[c.step].kind is StepKind.PIVOT and entered_late(c.step))
            )
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
        sim.drain()
        check_outcome(sim)
        check_calls(sim)
    finally:
        note("\n".join(sim.transcript))
    for label in sorted(sim.seen):  # shown by --hypothesis-show-statistics
        statistic(label)


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
        if step.callback:  # only compensatable steps complete by callback, within a timeout
            assert step.kind is StepKind.COMPENSATABLE
            assert step.callback_timeout_s > 0


def test_the_simulation_reaches_every_callback_race() -> None:
    """Guard against callback participants that never race the machine."""
    seen: set[str] = set()
    endings: set[SagaStatus] = set()
    rnd = random.Random(2)
    p = plan(
        callback("a", 0.5, RetryPlan(max_attempts=2, jitter=0.0)),
        (callback("b", 3.0), comp("c"), callback("d", 0.05)),
        pivot("p", RetryPlan(max_attempts=2)),
        retriable("r", RetryPlan(max_attempts=1)),
        park=True,
    )
    for _ in range(300):
        sim = Simulation(p, random.Random(rnd.getrandbits(32)), 0.3, 300)
        try:
            sim.run()
            sim.drain()
            check_outcome(sim)
            check_calls(sim)
        except BaseException:
            print("\n".join(sim.transcript))
            raise
        seen |= sim.seen
        endings.add(sim.state.status)
    wanted = {
        "completed while waiting",
        "completed before the 202",
        "completed in a parallel group",
        "timed out",
        "answer after the timeout refused",
        "stale 202 refused",
        "repeated completion refused",
        "completion reached a parked saga",
        "compensated after a timeout",
    }
    assert wanted <= seen, wanted - seen
    assert endings == {S.COMPLETED, S.COMPENSATED, S.FAILED}
