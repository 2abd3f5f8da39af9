"""The saga row as the store hands it out, and the values written with it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from orchestrator.machine import SagaState, state_from_json


@dataclass(frozen=True)
class StoredSaga:
    """A saga as read from its row."""

    id: uuid.UUID
    definition_name: str
    definition_version: int
    input: Any
    state: SagaState
    version: int
    wake_at: datetime | None
    lease_owner: str | None
    created_at: datetime
    updated_at: datetime
    trace_id: str | None = None


@dataclass(frozen=True)
class HistoryEvent:
    """One row of a saga's history, to be written with a transition."""

    kind: str
    at: datetime
    step: str | None = None
    phase: str | None = None
    attempt: int | None = None
    outcome: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Lease:
    """A worker's hold on a saga until ``expires_at``; nobody else claims it before."""

    owner: str
    expires_at: datetime


def saga_from_row(row: sa.Row[Any]) -> StoredSaga:
    """The :class:`StoredSaga` of a ``sagas`` row (all columns selected)."""
    m = row._mapping
    return StoredSaga(
        id=m["id"],
        definition_name=m["definition_name"],
        definition_version=m["definition_version"],
        input=m["input"],
        state=state_from_json(m["state"]),
        version=m["version"],
        wake_at=m["wake_at"],
        lease_owner=m["lease_owner"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        trace_id=m["trace_id"],
    )
