"""Small builders for plans and a driver that runs a saga through the pure machine.

Plans are written as their stages::

    plan("a", par("b", "c"), pivot("p"), retriable("r"), park=True, deadline_s=30)

A bare name is a compensatable step (``callback`` makes one completed by
callback); ``par`` makes a parallel group. ``SagaRun``
answers the calls the machine asks for, advancing a fake clock to ``wake_at``
when nothing is due, and records every batch of calls as strings such as
``"b.action#2"`` (step ``b``, its action, attempt 2).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from orchestrator.machine import (
    ACTIVE_STATUSES,
    CallCommand,
    CallOutcome,
    Decision,
    Event,
    OutcomeKind,
    Phase,
    Plan,
    RetryPlan,
    SagaState,
    SagaStatus,
    StepKind,
    StepPlan,
    StepState,
    Tick,
    apply,
    due_calls,
    start,
    wake_at,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

OK = OutcomeKind.SUCCEEDED
NO = OutcomeKind.REJECTED
LOST = OutcomeKind.TRANSIENT

#: Fast, jitter-free retries unless a test says otherwise.
FAST = RetryPlan(max_attempts=3, initial_backoff_ms=100, max_backoff_ms=1_000, jitter=0.0)


def comp(name: str, retry: RetryPlan = FAST) -> StepPlan:
    return StepPlan(name, StepKind.COMPENSATABLE, has_compensation=True, retry=retry)


def callback(name: str, timeout_s: float = 30.0, retry: RetryPlan = FAST) -> StepPlan:
    """A compensatable step the participant completes by callback after answering 202."""
    return StepPlan(
        name,
        StepKind.COMPENSATABLE,
        has_compensation=True,
        retry=retry,
        callback=True,
        callback_timeout_s=timeout_s,
    )


def pivot(name: str, retry: RetryPlan = FAST) -> StepPlan:
    return StepPlan(name, StepKind.PIVOT, has_compensation=False, retry=retry)


def retriable(name: str, retry: RetryPlan = FAST) -> StepPlan:
    return StepPlan(name, StepKind.RETRIABLE, has_compensation=False, retry=retry)


Element = str | StepPlan | tuple[StepPlan, ...]


def par(*members: str | StepPlan) -> tuple[StepPlan, ...]:
    """A parallel group."""
    return tuple(comp(m) if isinstance(m, str) else m for m in members)


def plan(*elements: Element, park: bool = False, deadline_s: float | None = None) -> Plan:
    """A plan whose stages are ``elements`` in order (a tuple is a parallel group)."""
    steps: list[StepPlan] = []
    stages: list[tuple[int, ...]] = []
    for element in elements:
        group = element if isinstance(element, tuple) else (element,)
        members = [comp(m) if isinstance(m, str) else m for m in group]
        stages.append(tuple(range(len(steps), len(steps) + len(members))))
        steps.extend(members)
    return Plan(
        steps=tuple(steps), stages=tuple(stages), park_on_failure=park, deadline_s=deadline_s
    )


def seq(*names: str, park: bool = False, deadline_s: float | None = None) -> Plan:
    """Compensatable steps one after another."""
    return plan(*names, park=park, deadline_s=deadline_s)


def call_name(plan: Plan, call: CallCommand) -> str:
    return f"{plan.steps[call.step].name}.{call.phase.value}#{call.attempt}"


@dataclass
class SagaRun:
    """One saga driven through the machine with a fake clock."""

    plan: Plan
    now: datetime = T0
    key: str = "saga-1"
    state: SagaState = field(init=False)
    #: Every batch of calls that became due together, in order.
    batches: list[tuple[str, ...]] = field(default_factory=list)
    #: When each batch became due.
    batch_times: list[datetime] = field(default_factory=list)
    #: Every state the saga has been in, the initial one first.
    history: list[SagaState] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.state = start(self.plan, self.now)
        self.history.append(self.state)

    # -- looking ---------------------------------------------------------------------

    @property
    def status(self) -> SagaStatus:
        return self.state.status

    @property
    def calls(self) -> list[str]:
        return [c for batch in self.batches for c in batch]

    def index(self, name: str) -> int:
        return next(i for i, s in enumerate(self.plan.steps) if s.name == name)

    def step(self, name: str) -> StepState:
        return self.state.steps[self.index(name)]

    def due(self) -> tuple[str, ...]:
        return tuple(call_name(self.plan, c) for c in due_calls(self.plan, self.state, self.now))

    def wake(self) -> datetime | None:
        return wake_at(self.plan, self.state)

    # -- acting ----------------------------------------------------------------------

    def advance(self, seconds: float) -> SagaRun:
        self.now += timedelta(seconds=seconds)
        return self

    def send(self, event: Event) -> Decision:
        decision = apply(self.plan, self.state, event, self.now, self.key)
        self.state = decision.state
        self.history.append(self.state)
        return decision

    def outcome(
        self,
        name: str,
        kind: OutcomeKind,
        *,
        phase: Phase | None = None,
        attempt: int | None = None,
        error: str | None = None,
        result: object = None,
    ) -> CallOutcome:
        """An outcome for ``name``'s current attempt in the saga's current phase (by default)."""
        if phase is None:
            compensating = self.status is SagaStatus.COMPENSATING
            phase = Phase.COMPENSATION if compensating else Phase.ACTION
        if attempt is None:
            step = self.step(name)
            attempt = step.attempts if phase is Phase.ACTION else step.compensation_attempts
        if error is None and kind is not OK:
            error = f"{name} {kind.value}"
        return CallOutcome(self.index(name), phase, attempt, kind, result=result, error=error)

    def answer(
        self,
        name: str,
        kind: OutcomeKind = OK,
        *,
        phase: Phase | None = None,
        attempt: int | None = None,
    ) -> Decision:
        """Answer ``name``'s current call (see ``outcome``) and fold the answer in."""
        return self.send(self.outcome(name, kind, phase=phase, attempt=attempt))

    def drive(
        self,
        actions: Mapping[str, Iterable[OutcomeKind]] | None = None,
        compensations: Mapping[str, Iterable[OutcomeKind]] | None = None,
        max_events: int = 500,
    ) -> SagaRun:
        """Answer due calls (scripted answers per step name, then successes) until the saga
        stops being active: completed, compensated or failed.

        When nothing is due the clock jumps to ``wake_at`` and a ``Tick`` is applied, as a
        worker would do.
        """
        scripts = {
            Phase.ACTION: {k: list(v) for k, v in (actions or {}).items()},
            Phase.COMPENSATION: {k: list(v) for k, v in (compensations or {}).items()},
        }
        for _ in range(max_events):
            if self.status not in ACTIVE_STATUSES:
                return self
            calls = due_calls(self.plan, self.state, self.now)
            if not calls:
                wake = self.wake()
                assert wake is not None, "an active saga must say when to wake"
                assert wake > self.now, "nothing due, yet the saga wants to wake now: stalled"
                self.now = wake
                self.send(Tick())
                continue
            self.batches.append(tuple(call_name(self.plan, c) for c in calls))
            self.batch_times.append(self.now)
            for call in calls:
                script = scripts[call.phase].get(self.plan.steps[call.step].name, [])
                kind = script.pop(0) if script else OK
                name = self.plan.steps[call.step].name
                self.send(
                    CallOutcome(
                        call.step,
                        call.phase,
                        call.attempt,
                        kind,
                        result={"step": name} if kind is OK else None,
                        error=None if kind is OK else f"{name} {kind.value}",
                    )
                )
        raise AssertionError(f"the saga did not stop within {max_events} events")


def with_step(state: SagaState, index: int, step: StepState) -> SagaState:
    """A copy of ``state`` with one step replaced (to reach states a long run would)."""
    steps = list(state.steps)
    steps[index] = step
    return replace(state, steps=tuple(steps))
