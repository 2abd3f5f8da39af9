"""The saga's state as pure data: statuses, per-step state, and the plan they follow.

Everything here is an immutable value that serialises to JSON and back without
loss, because the whole state is stored in the saga's row and guarded by one
version number (see docs/decisions.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

JSON = Any


class SagaStatus(StrEnum):
    RUNNING = "running"
    COMPENSATING = "compensating"
    COMPLETED = "completed"
    COMPENSATED = "compensated"
    #: Stopped and waiting for an operator (a compensation that cannot succeed,
    #: a parked forward step, a pivot whose outcome is unknown).
    FAILED = "failed"


#: Statuses a worker drives; the others wait for nothing (final) or for a person (failed).
ACTIVE_STATUSES = frozenset({SagaStatus.RUNNING, SagaStatus.COMPENSATING})
FINAL_STATUSES = frozenset({SagaStatus.COMPLETED, SagaStatus.COMPENSATED})


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    REJECTED = "rejected"
    FAILED = "failed"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"
    COMPENSATION_FAILED = "compensation_failed"


class StepKind(StrEnum):
    COMPENSATABLE = "compensatable"
    PIVOT = "pivot"
    RETRIABLE = "retriable"


class Phase(StrEnum):
    ACTION = "action"
    COMPENSATION = "compensation"


@dataclass(frozen=True)
class RetryPlan:
    """How often and how patiently one call is retried."""

    max_attempts: int = 3
    initial_backoff_ms: int = 100
    max_backoff_ms: int = 10_000
    multiplier: float = 2.0
    jitter: float = 0.2


@dataclass(frozen=True)
class StepPlan:
    """What the machine needs to know of one step of a definition."""

    name: str
    kind: StepKind = StepKind.COMPENSATABLE
    has_compensation: bool = True
    retry: RetryPlan = field(default_factory=RetryPlan)
    #: Completed by a callback after the participant answered 202.
    callback: bool = False
    #: How long a callback step waits for its completion once accepted.
    callback_timeout_s: float = 0.0


@dataclass(frozen=True)
class Plan:
    """A definition reduced to what decides transitions.

    ``stages`` groups step indexes: a stage of one is a plain step, a larger one
    a parallel group whose members run concurrently.
    """

    steps: tuple[StepPlan, ...]
    stages: tuple[tuple[int, ...], ...]
    park_on_failure: bool = False
    deadline_s: float | None = None

    @classmethod
    def sequential(cls, steps: tuple[StepPlan, ...], **kwargs: Any) -> Plan:
        return cls(steps=steps, stages=tuple((i,) for i in range(len(steps))), **kwargs)

    def stage_of(self, step: int) -> int:
        for index, members in enumerate(self.stages):
            if step in members:
                return index
        raise ValueError(f"step {step} is in no stage")


@dataclass(frozen=True)
class StepState:
    status: StepStatus = StepStatus.PENDING
    #: Action attempts made or in flight, over the saga's whole life.
    attempts: int = 0
    compensation_attempts: int = 0
    #: ``attempts`` (or ``compensation_attempts``) when the retry budget last
    #: started afresh; an operator's retry resets the budget, not the count.
    budget_from: int = 0
    #: When the next call of this step (action or compensation) is due.
    due_at: datetime | None = None
    #: Some action attempt ended without a definite answer: it may have taken effect.
    uncertain: bool = False
    #: The participant accepted the call (202) and will complete it by callback;
    #: ``due_at`` is then the time the wait gives up.
    awaiting_callback: bool = False
    last_error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    result: JSON = None


@dataclass(frozen=True)
class SagaError:
    step: str
    phase: Phase
    message: str


@dataclass(frozen=True)
class SagaState:
    status: SagaStatus
    steps: tuple[StepState, ...]
    #: The stage the saga is working on (forward or, when compensating, backward).
    stage: int = 0
    pivoted: bool = False
    deadline_at: datetime | None = None
    error: SagaError | None = None
    #: Which phase a ``failed`` saga stopped in, so an operator's retry resumes it.
    parked_phase: Phase | None = None

    def results(self, plan: Plan) -> dict[str, JSON]:
        """Results of the steps that succeeded, by step name (for templates and the API)."""
        return {
            plan.steps[i].name: s.result
            for i, s in enumerate(self.steps)
            if s.status is StepStatus.SUCCEEDED
            or (s.result is not None and s.status is not StepStatus.PENDING)
        }


def _dt(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse_dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def step_to_json(step: StepState) -> dict[str, JSON]:
    return {
        "status": step.status.value,
        "attempts": step.attempts,
        "compensation_attempts": step.compensation_attempts,
        "budget_from": step.budget_from,
        "due_at": _dt(step.due_at),
        "uncertain": step.uncertain,
        "awaiting_callback": step.awaiting_callback,
        "last_error": step.last_error,
        "started_at": _dt(step.started_at),
        "finished_at": _dt(step.finished_at),
        "result": step.result,
    }


def step_from_json(data: dict[str, JSON]) -> StepState:
    return StepState(
        status=StepStatus(data["status"]),
        attempts=data["attempts"],
        compensation_attempts=data["compensation_attempts"],
        budget_from=data["budget_from"],
        due_at=_parse_dt(data["due_at"]),
        uncertain=data["uncertain"],
        awaiting_callback=data.get("awaiting_callback", False),
        last_error=data["last_error"],
        started_at=_parse_dt(data["started_at"]),
        finished_at=_parse_dt(data["finished_at"]),
        result=data["result"],
    )


def state_to_json(state: SagaState) -> dict[str, JSON]:
    """The state as a JSON document (stored in the saga row)."""
    error = state.error
    return {
        "status": state.status.value,
        "steps": [step_to_json(s) for s in state.steps],
        "stage": state.stage,
        "pivoted": state.pivoted,
        "deadline_at": _dt(state.deadline_at),
        "error": None
        if error is None
        else {"step": error.step, "phase": error.phase.value, "message": error.message},
        "parked_phase": state.parked_phase.value if state.parked_phase else None,
    }


def state_from_json(data: dict[str, JSON]) -> SagaState:
    error = data["error"]
    return SagaState(
        status=SagaStatus(data["status"]),
        steps=tuple(step_from_json(s) for s in data["steps"]),
        stage=data["stage"],
        pivoted=data["pivoted"],
        deadline_at=_parse_dt(data["deadline_at"]),
        error=None
        if error is None
        else SagaError(step=error["step"], phase=Phase(error["phase"]), message=error["message"]),
        parked_phase=Phase(data["parked_phase"]) if data["parked_phase"] else None,
    )
