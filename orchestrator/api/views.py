"""JSON shapes of the API's answers (the REST contract of docs/API.md)."""

from __future__ import annotations

from typing import Any

from orchestrator.definitions import SagaDefinition
from orchestrator.store.definitions import StoredDefinition
from orchestrator.store.rows import StoredSaga


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def definition_view(stored: StoredDefinition) -> dict[str, Any]:
    return {
        **stored.definition.model_dump(mode="json"),
        "version": stored.version,
        "created_at": _iso(stored.created_at),
    }


def saga_view(saga: StoredSaga, definition: SagaDefinition) -> dict[str, Any]:
    plan = definition.plan()
    state = saga.state
    error = state.error
    return {
        "id": str(saga.id),
        "definition": saga.definition_name,
        "definition_version": saga.definition_version,
        "status": state.status.value,
        "input": saga.input,
        "results": state.results(plan),
        "steps": [
            {
                "name": step_plan.name,
                "kind": step_plan.kind.value,
                "status": step.status.value,
                "attempts": step.attempts,
                "compensation_attempts": step.compensation_attempts,
                "last_error": step.last_error,
                "started_at": _iso(step.started_at),
                "finished_at": _iso(step.finished_at),
                "next_attempt_at": _iso(step.due_at),
            }
            for step_plan, step in zip(plan.steps, state.steps, strict=True)
        ],
        "error": None
        if error is None
        else {"step": error.step, "phase": error.phase.value, "message": error.message},
        "deadline_at": _iso(state.deadline_at),
        "trace_id": saga.trace_id,
        "version": saga.version,
        "created_at": _iso(saga.created_at),
        "updated_at": _iso(saga.updated_at),
    }
