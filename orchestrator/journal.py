"""What a saga's history records of a status change and of a participant call.

Shared by the worker (which records its calls and the transitions they cause)
and by the operations behind the API (which record the transitions a request
causes), so both write the same entries.
"""

from __future__ import annotations

from datetime import datetime

from orchestrator.machine import CallCommand, SagaState
from orchestrator.store.rows import HistoryEvent
from orchestrator.transport.outcome import CallResult


def transition_history(before: SagaState, after: SagaState, now: datetime) -> list[HistoryEvent]:
    """The ``transition`` entry of a status change, or nothing when the status stayed."""
    if before.status is after.status:
        return []
    detail: dict[str, object] = {"from": before.status.value, "to": after.status.value}
    if after.error is not None:
        detail["error"] = {
            "step": after.error.step,
            "phase": after.error.phase.value,
            "message": after.error.message,
        }
    return [HistoryEvent("transition", now, detail=detail)]


def call_history(
    command: CallCommand, name: str, result: CallResult, now: datetime
) -> HistoryEvent:
    """The ``call`` entry of one attempt of step ``name``."""
    detail: dict[str, object] = {"duration_ms": round(result.duration_ms, 3)}
    for key in ("status", "error", "url", "fault"):
        value = getattr(result, key)
        if value is not None:
            detail[key] = value
    return HistoryEvent(
        "call",
        now,
        step=name,
        phase=command.phase.value,
        attempt=command.attempt,
        outcome=result.kind.value,
        detail=detail,
    )
