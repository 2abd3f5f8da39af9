"""Every saga transition, decided by pure functions.

Theory of operation
-------------------
A saga follows a :class:`Plan`: stages of steps run in order, the members of a
stage concurrently. The state says, for each step, where it stands; the calls
that are due follow from the state alone (``due_calls``), so a worker that
crashes loses nothing: whoever loads the state next makes the same calls again,
with the same idempotency keys.

Forward: entering a stage marks its members ``running`` with attempt 1 due now.
A success is recorded; when every member succeeded the next stage begins, and
after the last one the saga is ``completed``. A rejection (a definite business
"no") or a transient failure that exhausts the retry budget fails the step for
good. Then, before the pivot, the saga compensates (or parks, if the definition
says ``on_failure: park``); after the pivot, or at a pivot whose outcome is
unknown, it can only park (``failed``) for an operator.

Backward: compensation walks the stages in reverse, from the one that failed,
compensating every member that may have taken effect: succeeded, failed with an
unknown outcome, still running, or rejected after an earlier attempt that had no
definite answer. A compensation that is refused or exhausts its budget parks the
saga (``failed``), visibly; an operator's retry resumes it with a fresh budget.

Rules: no I/O and no clock (``now`` is passed in); ``apply`` never raises for a
valid event; an outcome that no longer matches the state (a late or repeated
answer) changes nothing; status changes are checked against the tables below,
which the tests and the docs read.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from orchestrator.machine.backoff import backoff
from orchestrator.machine.events import (
    CallbackCompleted,
    CallOutcome,
    CancelRequested,
    CompensateRequested,
    Event,
    OutcomeKind,
    RetryRequested,
    Tick,
)
from orchestrator.machine.state import (
    Phase,
    Plan,
    SagaError,
    SagaState,
    SagaStatus,
    StepKind,
    StepState,
    StepStatus,
)

S, T = SagaStatus, StepStatus

#: Allowed saga status changes.
SAGA_TRANSITIONS: dict[SagaStatus, frozenset[SagaStatus]] = {
    S.RUNNING: frozenset({S.COMPLETED, S.COMPENSATING, S.FAILED}),
    S.COMPENSATING: frozenset({S.COMPENSATED, S.FAILED}),
    S.FAILED: frozenset({S.RUNNING, S.COMPENSATING}),
    S.COMPLETED: frozenset(),
    S.COMPENSATED: frozenset(),
}

#: Allowed step status changes.
STEP_TRANSITIONS: dict[StepStatus, frozenset[StepStatus]] = {
    T.PENDING: frozenset({T.RUNNING}),
    T.RUNNING: frozenset({T.SUCCEEDED, T.REJECTED, T.FAILED, T.COMPENSATING}),
    T.SUCCEEDED: frozenset({T.COMPENSATING}),
    T.REJECTED: frozenset({T.RUNNING, T.COMPENSATING}),
    T.FAILED: frozenset({T.RUNNING, T.COMPENSATING}),
    T.COMPENSATING: frozenset({T.COMPENSATED, T.COMPENSATION_FAILED}),
    T.COMPENSATION_FAILED: frozenset({T.COMPENSATING}),
    T.COMPENSATED: frozenset(),
}


class IllegalTransition(Exception):
    """A bug: the machine tried a status change its tables forbid."""


@dataclass(frozen=True)
class CallCommand:
    """Call ``phase`` of step ``step`` now; ``attempt`` goes into ``X-Saga-Attempt``."""

    step: int
    phase: Phase
    attempt: int


@dataclass(frozen=True)
class Decision:
    """The state after an event; ``reason`` says why an event was not taken."""

    state: SagaState
    accepted: bool = True
    reason: str | None = None


def start(plan: Plan, now: datetime) -> SagaState:
    """The state of a new saga: its first stage running, attempt 1 due now."""
    deadline = now + timedelta(seconds=plan.deadline_s) if plan.deadline_s is not None else None
    initial = SagaState(
        status=S.RUNNING,
        steps=tuple(StepState() for _ in plan.steps),
        deadline_at=deadline,
    )
    draft = _Draft(plan, initial, now, key="")
    draft.enter_stage(0)
    return draft.freeze()


def apply(plan: Plan, state: SagaState, event: Event, now: datetime, key: str = "") -> Decision:
    """Fold one event into the state. ``key`` (the saga id) seeds retry jitter."""
    draft = _Draft(plan, state, now, key)
    # Time passes before the event: a completion that arrives after its step's
    # timeout finds the step already failed, whatever else happened meanwhile.
    draft.expire_callbacks()
    reason: str | None
    match event:
        case CallOutcome(phase=Phase.ACTION):
            reason = draft.on_action_outcome(event)
        case CallOutcome():
            reason = draft.on_compensation_outcome(event)
        case CallbackCompleted():
            reason = draft.on_callback(event)
        case CancelRequested():
            reason = draft.on_cancel(event.reason)
        case RetryRequested():
            reason = draft.on_retry()
        case CompensateRequested():
            reason = draft.on_compensate()
        case Tick():
            reason = None
    draft.expire_callbacks()
    draft.enforce_deadline()
    return Decision(draft.freeze(), accepted=reason is None, reason=reason)


def due_calls(plan: Plan, state: SagaState, now: datetime) -> tuple[CallCommand, ...]:
    """The calls to make now, at most one per step of the current stage."""
    if state.status is S.RUNNING:
        wanted, phase = T.RUNNING, Phase.ACTION
    elif state.status is S.COMPENSATING:
        wanted, phase = T.COMPENSATING, Phase.COMPENSATION
    else:
        return ()
    calls = []
    for index in plan.stages[state.stage]:
        step = state.steps[index]
        if step.awaiting_callback:
            continue  # nothing to call: the participant reports by callback
        if step.status is wanted and step.due_at is not None and step.due_at <= now:
            attempt = step.attempts if phase is Phase.ACTION else step.compensation_attempts
            calls.append(CallCommand(index, phase, attempt))
    return tuple(calls)


def wake_at(plan: Plan, state: SagaState) -> datetime | None:
    """When the saga next needs a worker; ``None`` when it waits for nobody but a person."""
    if state.status not in (S.RUNNING, S.COMPENSATING):
        return None
    wanted = T.RUNNING if state.status is S.RUNNING else T.COMPENSATING
    times = [
        step.due_at
        for index in plan.stages[state.stage]
        if (step := state.steps[index]).status is wanted and step.due_at is not None
    ]
    if _deadline_can_act(plan, state):
        assert state.deadline_at is not None
        times.append(state.deadline_at)
    return min(times) if times else None


def _deadline_can_act(plan: Plan, state: SagaState) -> bool:
    """Whether passing the deadline would change anything now (it cannot during the pivot)."""
    return (
        state.status is S.RUNNING
        and state.deadline_at is not None
        and not state.pivoted
        and not any(
            plan.steps[i].kind is StepKind.PIVOT and state.steps[i].status is T.RUNNING
            for i in plan.stages[state.stage]
        )
    )


class _Draft:
    """A mutable copy of the state for the duration of one ``apply``."""

    def __init__(self, plan: Plan, state: SagaState, now: datetime, key: str) -> None:
        self.plan, self.now, self.key = plan, now, key
        self.steps = list(state.steps)
        self.status = state.status
        self.stage = state.stage
        self.pivoted = state.pivoted
        self.deadline_at = state.deadline_at
        self.error = state.error
        self.parked_phase = state.parked_phase

    def freeze(self) -> SagaState:
        return SagaState(
            status=self.status,
            steps=tuple(self.steps),
            stage=self.stage,
            pivoted=self.pivoted,
            deadline_at=self.deadline_at,
            error=self.error,
            parked_phase=self.parked_phase,
        )

    # -- bookkeeping -----------------------------------------------------------------

    def set_status(self, status: SagaStatus) -> None:
        if status not in SAGA_TRANSITIONS[self.status]:
            raise IllegalTransition(f"saga {self.status} -> {status}")
        self.status = status

    def update_step(self, index: int, **changes: Any) -> None:
        old = self.steps[index]
        status = changes.get("status", old.status)
        if status is not old.status and status not in STEP_TRANSITIONS[old.status]:
            raise IllegalTransition(f"step {self.plan.steps[index].name}: {old.status} -> {status}")
        self.steps[index] = replace(old, **changes)

    def members(self) -> tuple[int, ...]:
        return self.plan.stages[self.stage]

    def name(self, index: int) -> str:
        return self.plan.steps[index].name

    def retry_later(self, index: int, phase: Phase, error: str | None) -> None:
        step = self.steps[index]
        done = step.attempts if phase is Phase.ACTION else step.compensation_attempts
        delay = backoff(
            self.plan.steps[index].retry, done - step.budget_from, f"{self.key}:{index}:{done}"
        )
        counter = "attempts" if phase is Phase.ACTION else "compensation_attempts"
        self.update_step(index, **{counter: done + 1}, due_at=self.now + delay, last_error=error)

    def budget_left(self, index: int, phase: Phase) -> bool:
        step, policy = self.steps[index], self.plan.steps[index]
        if phase is Phase.ACTION and policy.kind is StepKind.RETRIABLE:
            return True  # after the pivot there is no way back: retry until it succeeds
        done = step.attempts if phase is Phase.ACTION else step.compensation_attempts
        return done - step.budget_from < policy.retry.max_attempts

    def park(self, phase: Phase, error: SagaError) -> None:
        self.set_status(S.FAILED)
        self.parked_phase = phase
        self.error = error

    def pivot_in_flight(self) -> bool:
        return any(
            self.plan.steps[i].kind is StepKind.PIVOT and self.steps[i].status is T.RUNNING
            for i in self.members()
        )

    # -- forward ---------------------------------------------------------------------

    def enter_stage(self, stage: int) -> None:
        if stage >= len(self.plan.stages):
            self.set_status(S.COMPLETED)
            return
        if self.deadline_at is not None and not self.pivoted and self.now >= self.deadline_at:
            # Too late to start anything new (above all the pivot): undo what was done.
            first = self.plan.stages[stage][0]
            self.error = SagaError(self.name(first), Phase.ACTION, "deadline passed")
            self.begin_compensation()
            return
        self.stage = stage
        for index in self.members():
            attempts = self.steps[index].attempts
            self.update_step(
                index,
                status=T.RUNNING,
                attempts=attempts + 1,
                budget_from=attempts,
                due_at=self.now,
                started_at=self.now,
            )

    def is_current(self, outcome: CallOutcome, status: StepStatus, attempts: int) -> bool:
        """Whether ``outcome`` answers the call this step is waiting on (not a late repeat)."""
        return (
            outcome.step in self.members()
            and self.steps[outcome.step].status is status
            and outcome.attempt == attempts
        )

    def mark_answered(self, index: int, outcome: CallOutcome) -> None:
        """Record a definite answer (succeeded or rejected) of a step's action."""
        if outcome.kind is OutcomeKind.SUCCEEDED:
            self.update_step(
                index,
                status=T.SUCCEEDED,
                result=outcome.result,
                due_at=None,
                finished_at=self.now,
                awaiting_callback=False,
            )
        else:
            self.update_step(
                index,
                status=T.REJECTED,
                due_at=None,
                finished_at=self.now,
                last_error=outcome.error,
                awaiting_callback=False,
            )

    def on_action_outcome(self, outcome: CallOutcome) -> str | None:
        index = outcome.step
        step = self.steps[index]
        if self.status is not S.RUNNING or not self.is_current(outcome, T.RUNNING, step.attempts):
            return "stale outcome"
        if outcome.kind is OutcomeKind.ACCEPTED:
            policy = self.plan.steps[index]
            if not policy.callback:  # a 202 from a step that does not call back is a success
                return self.on_action_outcome(replace(outcome, kind=OutcomeKind.SUCCEEDED))
            if step.awaiting_callback:
                return "already accepted"  # a repeated 202 must not restart the wait
            wait = timedelta(seconds=policy.callback_timeout_s)
            self.update_step(index, awaiting_callback=True, due_at=self.now + wait)
        elif outcome.kind is OutcomeKind.SUCCEEDED:
            self.mark_answered(index, outcome)
            if self.plan.steps[index].kind is StepKind.PIVOT:
                self.pivoted = True
            if all(self.steps[i].status is T.SUCCEEDED for i in self.members()):
                self.enter_stage(self.stage + 1)
        elif outcome.kind is OutcomeKind.REJECTED:
            self.mark_answered(index, outcome)
            self.step_failed(index, outcome.error or "rejected")
        else:
            self.update_step(index, uncertain=True)
            if self.budget_left(index, Phase.ACTION):
                self.retry_later(index, Phase.ACTION, outcome.error)
            else:
                self.update_step(
                    index,
                    status=T.FAILED,
                    due_at=None,
                    finished_at=self.now,
                    last_error=outcome.error,
                )
                self.step_failed(index, f"gave up after {step.attempts} attempts: {outcome.error}")
        return None

    def on_callback(self, completion: CallbackCompleted) -> str | None:
        """A completion counts like the answer of the attempt it completes."""
        if completion.kind not in (OutcomeKind.SUCCEEDED, OutcomeKind.REJECTED):
            return "a completion is either succeeded or rejected"
        outcome = CallOutcome(
            completion.step,
            Phase.ACTION,
            completion.attempt,
            completion.kind,
            completion.result,
            completion.error,
        )
        if self.status is S.FAILED and self.parked_phase is Phase.ACTION:
            return self.on_completion_while_parked(outcome)
        return self.on_action_outcome(outcome)

    def on_completion_while_parked(self, outcome: CallOutcome) -> str | None:
        """A sibling failed and parked the saga while this step waited: keep its answer.

        The saga stays parked; the operator's retry or compensate then knows
        what this step did instead of treating it as unknown.
        """
        step = self.steps[outcome.step]
        if not step.awaiting_callback or not self.is_current(outcome, T.RUNNING, step.attempts):
            return "stale outcome"
        if step.due_at is not None and step.due_at <= self.now:
            return "the completion arrived after the step's timeout"
        self.mark_answered(outcome.step, outcome)
        return None

    def expire_callbacks(self) -> None:
        """A callback that did not come in time fails its step for good (outcome unknown)."""
        if self.status is not S.RUNNING:
            return
        for index in self.members():
            step = self.steps[index]
            if (
                step.status is T.RUNNING
                and step.awaiting_callback
                and step.due_at is not None
                and step.due_at <= self.now
            ):
                message = "no completion arrived before the step's timeout"
                self.update_step(
                    index,
                    status=T.FAILED,
                    uncertain=True,
                    awaiting_callback=False,
                    due_at=None,
                    finished_at=self.now,
                    last_error=message,
                )
                self.step_failed(index, message)
                if self.status is not S.RUNNING:
                    return

    def step_failed(self, index: int, message: str) -> None:
        policy = self.plan.steps[index]
        error = SagaError(self.name(index), Phase.ACTION, message)
        if self.pivoted or policy.kind is StepKind.RETRIABLE:
            self.park(Phase.ACTION, error)
        elif policy.kind is StepKind.PIVOT and self.steps[index].status is T.FAILED:
            # The point of no return may or may not have been passed: only a
            # retry (same idempotency key) can tell, so a person decides.
            self.park(Phase.ACTION, replace(error, message=f"outcome unknown, {message}"))
        elif self.plan.park_on_failure:
            self.park(Phase.ACTION, error)
        else:
            self.error = error
            self.begin_compensation()

    # -- backward --------------------------------------------------------------------

    def needs_compensation(self, index: int) -> bool:
        step = self.steps[index]
        if not self.plan.steps[index].has_compensation:
            return False
        return step.status in (T.SUCCEEDED, T.FAILED, T.RUNNING) or (
            step.status is T.REJECTED and step.uncertain
        )

    def begin_compensation(self) -> None:
        self.set_status(S.COMPENSATING)
        self.parked_phase = None
        self.enter_compensation_stage(self.stage)

    def enter_compensation_stage(self, stage: int) -> None:
        while stage >= 0:
            todo = [i for i in self.plan.stages[stage] if self.needs_compensation(i)]
            if todo:
                self.stage = stage
                for index in todo:
                    done = self.steps[index].compensation_attempts
                    self.update_step(
                        index,
                        status=T.COMPENSATING,
                        compensation_attempts=done + 1,
                        budget_from=done,
                        due_at=self.now,
                        awaiting_callback=False,
                    )
                return
            stage -= 1
        self.stage = 0
        self.set_status(S.COMPENSATED)

    def on_compensation_outcome(self, outcome: CallOutcome) -> str | None:
        index = outcome.step
        step = self.steps[index]
        if self.status is not S.COMPENSATING or not self.is_current(
            outcome, T.COMPENSATING, step.compensation_attempts
        ):
            return "stale outcome"
        if outcome.kind is OutcomeKind.SUCCEEDED:
            self.update_step(index, status=T.COMPENSATED, due_at=None, finished_at=self.now)
        elif outcome.kind is OutcomeKind.TRANSIENT and self.budget_left(index, Phase.COMPENSATION):
            self.retry_later(index, Phase.COMPENSATION, outcome.error)
        else:
            self.update_step(
                index,
                status=T.COMPENSATION_FAILED,
                due_at=None,
                finished_at=self.now,
                last_error=outcome.error,
            )
        self.after_compensation_outcome()
        return None

    def after_compensation_outcome(self) -> None:
        members = self.members()
        if any(self.steps[i].status is T.COMPENSATING for i in members):
            return
        failed = [i for i in members if self.steps[i].status is T.COMPENSATION_FAILED]
        if failed:
            index = failed[0]
            message = f"compensation failed: {self.steps[index].last_error}"
            self.park(Phase.COMPENSATION, SagaError(self.name(index), Phase.COMPENSATION, message))
            return
        self.enter_compensation_stage(self.stage - 1)

    # -- requests from outside -------------------------------------------------------

    def on_cancel(self, reason: str) -> str | None:
        if self.status is not S.RUNNING:
            return f"the saga is {self.status.value}, not running"
        if self.pivoted:
            return "the saga is past its pivot step and can only go forward"
        if self.pivot_in_flight():
            return "the saga's pivot step is in progress; its outcome decides"
        self.error = SagaError(self.name(self.members()[0]), Phase.ACTION, reason)
        self.begin_compensation()
        return None

    def on_retry(self) -> str | None:
        if self.status is not S.FAILED:
            return f"only a failed saga can be retried; this one is {self.status.value}"
        if self.parked_phase is Phase.COMPENSATION:
            self.set_status(S.COMPENSATING)
            for index in self.members():
                step = self.steps[index]
                if step.status is T.COMPENSATION_FAILED:
                    self.update_step(
                        index,
                        status=T.COMPENSATING,
                        compensation_attempts=step.compensation_attempts + 1,
                        budget_from=step.compensation_attempts,
                        due_at=self.now,
                        finished_at=None,
                    )
        else:
            self.set_status(S.RUNNING)
            for index in self.members():
                step = self.steps[index]
                if step.status in (T.REJECTED, T.FAILED):
                    self.update_step(
                        index,
                        status=T.RUNNING,
                        attempts=step.attempts + 1,
                        budget_from=step.attempts,
                        due_at=self.now,
                        finished_at=None,
                        awaiting_callback=False,
                    )
                elif step.status is T.RUNNING and not step.awaiting_callback:
                    self.update_step(index, due_at=self.now)
        self.parked_phase = None
        self.error = None
        return None

    def on_compensate(self) -> str | None:
        if self.status is not S.FAILED or self.parked_phase is not Phase.ACTION:
            return "only a saga parked at a forward step can be compensated"
        if self.pivoted:
            return "the saga is past its pivot step and can only go forward"
        if any(
            self.plan.steps[i].kind is StepKind.PIVOT and self.steps[i].status is T.FAILED
            for i in self.members()
        ):
            return "the pivot step's outcome is unknown; retry it to learn it"
        self.begin_compensation()
        return None

    def enforce_deadline(self) -> None:
        if (
            self.status is S.RUNNING
            and not self.pivoted
            and self.deadline_at is not None
            and self.now >= self.deadline_at
            and not self.pivot_in_flight()
        ):
            self.error = SagaError(self.name(self.members()[0]), Phase.ACTION, "deadline passed")
            self.begin_compensation()
