"""What the verification reads: plain, immutable values gathered after a campaign.

Nothing here does I/O. The campaign fills an :class:`Evidence` from the
orchestrator's API, the participants' ``/_ledger`` and read endpoints, and the
wire between workers and participants; the invariants in
:mod:`orchestrator.check.invariants` and :mod:`orchestrator.check.business`
read it. Tests build one by hand to plant violations.

The participants' ledgers are the primary witness: the orchestrator's own
state says what it *believes* happened, the ledgers say what the services
actually applied.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from orchestrator.definitions import parse_definition

if TYPE_CHECKING:
    from orchestrator.check.business import BusinessSnapshot

#: Where a saga may rest once nothing is left to do.
TERMINAL = frozenset({"completed", "compensated"})
ACTION = "action"
COMPENSATION = "compensation"


@dataclass(frozen=True)
class StepInfo:
    """One step of a definition, as far as the invariants care."""

    name: str
    participant: str
    kind: str
    stage: int
    """Index of the stage (a plain step or a parallel group): compensations run in reverse."""
    action_path: str
    compensation_path: str | None
    callback: bool = False
    """Completed by a callback after the participant answered ``202``."""


@dataclass(frozen=True)
class DefinitionInfo:
    """A saga definition reduced to its steps in order."""

    name: str
    steps: tuple[StepInfo, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DefinitionInfo:
        """Build from a definition in the API's JSON format (validated on the way)."""
        definition = parse_definition(dict(data))
        steps = tuple(
            StepInfo(
                name=step.name,
                participant=step.participant,
                kind=step.kind.value,
                stage=stage,
                action_path=step.action.path,
                compensation_path=step.compensation.path if step.compensation else None,
                callback=step.completion == "callback",
            )
            for stage, members in enumerate(definition.stages())
            for step in members
        )
        return cls(definition.name, steps)

    def step(self, name: str) -> StepInfo | None:
        """The step called ``name``, if the definition has one."""
        return next((s for s in self.steps if s.name == name), None)

    def phase_of(self, participant: str, step: str, path: str) -> str | None:
        """Which half of ``step`` a call to ``participant`` at ``path`` is, if any."""
        info = self.step(step)
        if info is None or info.participant != participant:
            return None
        if path == info.action_path:
            return ACTION
        if path == info.compensation_path:
            return COMPENSATION
        return None


@dataclass(frozen=True)
class SagaRecord:
    """A saga as the orchestrator reports it after the campaign."""

    id: str
    definition: str
    status: str
    input: Mapping[str, Any] = field(default_factory=dict)
    #: Step name -> the orchestrator's step status (succeeded, compensated, ...).
    step_statuses: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_api(cls, view: Mapping[str, Any]) -> SagaRecord:
        """Build from ``GET /v1/sagas/{id}``."""
        return cls(
            id=str(view["id"]),
            definition=str(view["definition"]),
            status=str(view["status"]),
            input=dict(view.get("input") or {}),
            step_statuses={str(s["name"]): str(s["status"]) for s in view.get("steps", [])},
        )


@dataclass(frozen=True)
class LedgerRow:
    """One idempotency key a participant recorded (``GET /_ledger``)."""

    participant: str
    key: str
    saga_id: str
    step: str
    phase: str
    status: str
    """Action keys: applied, compensated, tombstone or rejected; compensation keys: applied."""
    applied_at: datetime

    @classmethod
    def from_api(cls, participant: str, row: Mapping[str, Any]) -> LedgerRow:
        """Build from one element of ``GET /_ledger``."""
        return cls(
            participant=participant,
            key=str(row["key"]),
            saga_id=str(row["saga_id"]),
            step=str(row["step"]),
            phase=str(row["phase"]),
            status=str(row["status"]),
            applied_at=datetime.fromisoformat(str(row["applied_at"])),
        )

    @property
    def canonical_key(self) -> str:
        """The key the protocol prescribes for this row's saga, step and phase."""
        return f"{self.saga_id}:{self.step}:{self.phase}"


@dataclass(frozen=True)
class CompletionRow:
    """A completion a participant owed for an action it answered ``202`` (``GET /_callbacks``)."""

    participant: str
    key: str
    saga_id: str
    step: str
    status: str
    """pending (still to be sent), delivered (2xx) or refused (a definite 4xx, e.g. 409)."""
    http_status: int | None
    tries: int

    @classmethod
    def from_api(cls, participant: str, row: Mapping[str, Any]) -> CompletionRow:
        """Build from one element of ``GET /_callbacks``."""
        status = row.get("http_status")
        return cls(
            participant=participant,
            key=str(row["key"]),
            saga_id=str(row["saga_id"]),
            step=str(row["step"]),
            status=str(row["status"]),
            http_status=int(status) if status is not None else None,
            tries=int(row.get("tries", 0)),
        )


@dataclass(frozen=True)
class WireCall:
    """One request seen on the wire between a worker and a participant."""

    worker: str
    participant: str
    method: str
    path: str
    key: str | None
    saga_id: str | None
    step: str | None
    attempt: int | None
    #: The participant's answer; None when it never answered (connection lost).
    status: int | None
    #: The worker was gone (killed) or had hung up by the time the answer came.
    answer_lost: bool = False


@dataclass(frozen=True)
class Violation:
    """One counterexample to an invariant."""

    invariant: str
    message: str
    saga_id: str | None = None
    participant: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The violation as a JSON object for the report."""
        return {
            "invariant": self.invariant,
            "saga_id": self.saga_id,
            "participant": self.participant,
            "message": self.message,
        }


@dataclass(frozen=True)
class InvariantResult:
    """What checking one invariant found: how much it looked at and what was wrong."""

    name: str
    description: str
    checked: int
    violations: tuple[Violation, ...] = ()

    @property
    def ok(self) -> bool:
        """No counterexample."""
        return not self.violations

    def as_json(self) -> dict[str, Any]:
        """The result as a JSON object for the report (every violation included)."""
        return {
            "name": self.name,
            "description": self.description,
            "checked": self.checked,
            "ok": self.ok,
            "violations": [v.as_json() for v in self.violations],
        }


@dataclass(frozen=True)
class Evidence:
    """Everything the verification reads."""

    definitions: Mapping[str, DefinitionInfo]
    #: The campaign's sagas by id; only these are judged.
    sagas: Mapping[str, SagaRecord]
    #: Participant name -> every row of its ledger.
    ledgers: Mapping[str, tuple[LedgerRow, ...]]
    #: Every participant call seen on the wire (empty when not observed).
    wire: tuple[WireCall, ...] = ()
    #: The example services' business data, when the campaign ran against them.
    business: BusinessSnapshot | None = None
    #: Participant name -> the completions it owed (services without callback actions: none).
    completions: Mapping[str, tuple[CompletionRow, ...]] = field(default_factory=dict)
    #: Saga id -> the orchestrator's events of that saga (``GET /v1/sagas/{id}/events``).
    events: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)

    def rows_by_call(self) -> dict[tuple[str, str, str], list[LedgerRow]]:
        """Ledger rows grouped by (saga id, step, phase), across participants."""
        grouped: dict[tuple[str, str, str], list[LedgerRow]] = {}
        for rows in self.ledgers.values():
            for row in rows:
                grouped.setdefault((row.saga_id, row.step, row.phase), []).append(row)
        return grouped
