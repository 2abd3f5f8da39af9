"""Which status changes exist: the tables every transition is checked against.

The diagrams in docs/state-machine.md are rendered from these tables
(``orchestrator.machine.diagram``), so a change here shows there.
"""

from __future__ import annotations

from orchestrator.machine.state import SagaStatus, StepStatus

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

#: The status a new saga, and each of its steps, begins in.
SAGA_INITIAL, STEP_INITIAL = S.RUNNING, T.PENDING


class IllegalTransition(Exception):
    """A bug: the machine tried a status change its tables forbid."""
