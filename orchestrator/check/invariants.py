"""The generic invariants: pure checks of any participant that exposes ``/_ledger``.

Each check takes the :class:`~orchestrator.check.evidence.Evidence` and returns
an :class:`~orchestrator.check.evidence.InvariantResult` naming how much it
examined and every counterexample. Only the campaign's sagas are judged, but
ledger rows naming no campaign saga are themselves suspicious and reported.

The ledger has one row per idempotency key: an action key is ``applied``,
``compensated`` (applied, then undone), ``tombstone`` (its compensation came
first, the action will be refused) or ``rejected``; a compensation key is
``applied``. A key's ``applied_at`` is when its answer was settled, inside the
transaction that applied the effect, so compensations the orchestrator ran one
after the other carry increasing times.

A participant that answers a callback step ``202`` also lists, at
``/_callbacks``, the completion it owed for it: ``pending``, ``delivered`` or
``refused`` (a definite 4xx, such as 409 once the step stopped waiting).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from orchestrator.check import business
from orchestrator.check.evidence import (
    ACTION,
    COMPENSATION,
    TERMINAL,
    CompletionRow,
    Evidence,
    InvariantResult,
    LedgerRow,
    SagaRecord,
    Violation,
)

Rows = dict[tuple[str, str, str], list[LedgerRow]]

#: Action statuses that mean the effect happened at some point.
TOOK_EFFECT = frozenset({"applied", "compensated"})


def check_terminal(evidence: Evidence) -> InvariantResult:
    """Every saga is completed or compensated once the campaign is quiet."""
    name = "terminal"
    found = [
        Violation(name, f"saga is {saga.status} after quiescence ({_steps(saga)})", saga.id)
        for saga in evidence.sagas.values()
        if saga.status not in TERMINAL
    ]
    return InvariantResult(
        name, "every saga completed or compensated after quiescence", len(evidence.sagas), (*found,)
    )


def check_completed(evidence: Evidence, rows: Rows) -> InvariantResult:
    """Completed: every action applied exactly once, nothing compensated."""
    name = "completed_exactly_once"
    found: list[Violation] = []
    completed = [s for s in evidence.sagas.values() if s.status == "completed"]
    for saga in completed:
        definition = evidence.definitions[saga.definition]
        for step in definition.steps:
            actions = rows.get((saga.id, step.name, ACTION), [])
            statuses = [r.status for r in actions]
            if statuses != ["applied"]:
                what = "never applied" if not actions else f"ledger shows {statuses}"
                found.append(
                    Violation(name, f"action {step.name}: {what}", saga.id, step.participant)
                )
            for row in rows.get((saga.id, step.name, COMPENSATION), []):
                found.append(
                    Violation(name, f"step {step.name} was compensated", saga.id, row.participant)
                )
            told = saga.step_statuses.get(step.name)
            if told != "succeeded":
                found.append(
                    Violation(name, f"orchestrator reports {step.name} as {told}", saga.id)
                )
    return InvariantResult(
        name,
        "completed => every action applied exactly once and nothing compensated",
        len(completed),
        (*found,),
    )


def check_compensated(evidence: Evidence, rows: Rows) -> InvariantResult:
    """Compensated: every action that took effect was undone exactly once."""
    name = "compensated_exactly_once"
    found: list[Violation] = []
    compensated = [s for s in evidence.sagas.values() if s.status == "compensated"]
    for saga in compensated:
        for step in evidence.definitions[saga.definition].steps:
            actions = rows.get((saga.id, step.name, ACTION), [])
            undos = rows.get((saga.id, step.name, COMPENSATION), [])
            if len(actions) > 1:
                keys = sorted(r.key for r in actions)
                found.append(Violation(name, f"action {step.name} applied under {keys}", saga.id))
            if len(undos) > 1:
                found.append(
                    Violation(name, f"{step.name} compensated {len(undos)} times", saga.id)
                )
            for row in actions:
                if row.status == "applied" and not undos:
                    found.append(
                        Violation(
                            name,
                            f"action {step.name} applied and never compensated",
                            saga.id,
                            row.participant,
                        )
                    )
                elif row.status in ("compensated", "tombstone") and not undos:
                    found.append(
                        Violation(
                            name,
                            f"action {step.name} is {row.status} but no compensation is recorded",
                            saga.id,
                            row.participant,
                        )
                    )
    return InvariantResult(
        name,
        "compensated => every applied action compensated exactly once",
        len(compensated),
        (*found,),
    )


def check_reverse_order(evidence: Evidence, rows: Rows) -> InvariantResult:
    """Compensations ran in reverse stage order (members of one parallel group in any order)."""
    name = "compensation_order"
    found: list[Violation] = []
    checked = 0
    for saga in evidence.sagas.values():
        undone = [
            (step, rows[(saga.id, step.name, COMPENSATION)][0])
            for step in evidence.definitions[saga.definition].steps
            if (saga.id, step.name, COMPENSATION) in rows
        ]
        if len(undone) < 2:
            continue
        checked += 1
        for earlier, early_row in undone:
            for later, late_row in undone:
                if earlier.stage < later.stage and early_row.applied_at < late_row.applied_at:
                    found.append(
                        Violation(
                            name,
                            f"{earlier.name} (stage {earlier.stage}) was compensated at "
                            f"{early_row.applied_at.isoformat()}, before {later.name} "
                            f"(stage {later.stage}) at {late_row.applied_at.isoformat()}",
                            saga.id,
                        )
                    )
    return InvariantResult(name, "compensations in reverse order of the steps", checked, (*found,))


def check_no_action_after_compensation(evidence: Evidence, rows: Rows) -> InvariantResult:
    """No action takes effect once its compensation (or tombstone) is recorded."""
    name = "no_action_after_compensation"
    found: list[Violation] = []
    checked = 0
    for (saga_id, step, phase), undos in rows.items():
        if phase != COMPENSATION or saga_id not in evidence.sagas:
            continue
        checked += 1
        undo = min(undos, key=lambda r: r.applied_at)
        for action in rows.get((saga_id, step, ACTION), []):
            if action.status != "applied":
                continue
            when = (
                "after its compensation"
                if action.applied_at > undo.applied_at
                else "and its compensation did not undo it"
            )
            found.append(
                Violation(
                    name,
                    f"action {step} applied at {action.applied_at.isoformat()} {when} "
                    f"(compensation at {undo.applied_at.isoformat()})",
                    saga_id,
                    action.participant,
                )
            )
    return InvariantResult(
        name, "no action applied after (or despite) its compensation", checked, (*found,)
    )


def check_same_key(evidence: Evidence, rows: Rows) -> InvariantResult:
    """One idempotency key per call: on the wire across retries, and in the ledgers."""
    name = "same_idempotency_key"
    found: list[Violation] = []
    checked = 0
    for (saga_id, step, phase), group in rows.items():
        checked += 1
        saga = evidence.sagas.get(saga_id)
        if saga is None:
            found.append(
                Violation(name, f"{group[0].key}: effect of a saga the campaign never ran", saga_id)
            )
            continue
        info = evidence.definitions[saga.definition].step(step)
        for row in group:
            if row.key != row.canonical_key:
                found.append(
                    Violation(name, f"key {row.key!r} is not {row.canonical_key!r}", saga_id)
                )
            if info is None or info.participant != row.participant:
                found.append(
                    Violation(
                        name,
                        f"{row.key} recorded by a participant the step does not call",
                        saga_id,
                        row.participant,
                    )
                )
        if len(group) > 1:
            keys = sorted(r.key for r in group)
            found.append(Violation(name, f"{step} {phase} recorded under {keys}", saga_id))
    wire_checked, wire_found = _wire_keys(evidence, name)
    return InvariantResult(
        name,
        "every retry of a call carries the same Idempotency-Key (wire and ledgers)",
        checked + wire_checked,
        (*found, *wire_found),
    )


def _wire_keys(evidence: Evidence, name: str) -> tuple[int, list[Violation]]:
    keys: dict[tuple[str, str, str], set[str | None]] = defaultdict(set)
    for call in evidence.wire:
        saga = evidence.sagas.get(call.saga_id or "")
        # POST: an HTTP call; COMMAND: a broker command (their keys are held alike).
        if call.method not in ("POST", "COMMAND") or saga is None or call.step is None:
            continue
        phase = evidence.definitions[saga.definition].phase_of(
            call.participant, call.step, call.path
        )
        if phase is None:
            continue
        keys[(saga.id, call.step, phase)].add(call.key)
    found = [
        Violation(name, f"{step} {phase} sent with keys {sorted(map(str, sent))}", saga_id)
        for (saga_id, step, phase), sent in keys.items()
        if sent != {f"{saga_id}:{step}:{phase}"}
    ]
    return len(keys), found


def check_callbacks(evidence: Evidence, rows: Rows) -> InvariantResult:
    """A callback step's ``202`` and its completion are one applied action.

    Every completion a participant owed belongs to an action of a callback
    step that took effect there, under the same key, and is owed once; every
    completed saga's callback steps were completed by a delivered completion.
    """
    name = "callback_completed_once"
    found: list[Violation] = []
    checked = 0
    by_key: dict[str, list[CompletionRow]] = defaultdict(list)
    for owed in evidence.completions.values():
        for completion in owed:
            by_key[completion.key].append(completion)
    for key, group in sorted(by_key.items()):
        first = group[0]
        saga = evidence.sagas.get(first.saga_id)
        if saga is None:
            continue  # judged by same_idempotency_key through the ledger row
        checked += 1
        if len(group) > 1:
            owers = sorted(c.participant for c in group)
            found.append(Violation(name, f"{key} owed {len(group)} completions ({owers})", saga.id))
        info = evidence.definitions[saga.definition].step(first.step)
        if info is None or not info.callback:
            found.append(
                Violation(
                    name,
                    f"completion owed for {first.step}, which does not complete by callback",
                    saga.id,
                    first.participant,
                )
            )
        actions = [
            r
            for r in rows.get((saga.id, first.step, ACTION), [])
            if r.key == key and r.participant == first.participant
        ]
        if [r.status in TOOK_EFFECT for r in actions] != [True]:
            statuses = [r.status for r in actions]
            found.append(
                Violation(
                    name,
                    f"completion of {first.step} owed for an action whose ledger shows "
                    f"{statuses or 'nothing'}",
                    saga.id,
                    first.participant,
                )
            )
    completed_checked, completed_found = _completed_callbacks(evidence, by_key, name)
    return InvariantResult(
        name,
        "callback steps: one completion per applied action, delivered for completed sagas",
        checked + completed_checked,
        (*found, *completed_found),
    )


def _completed_callbacks(
    evidence: Evidence, by_key: dict[str, list[CompletionRow]], name: str
) -> tuple[int, list[Violation]]:
    checked, found = 0, []
    for saga in evidence.sagas.values():
        if saga.status != "completed":
            continue
        for step in evidence.definitions[saga.definition].steps:
            if not step.callback:
                continue
            checked += 1
            owed = by_key.get(f"{saga.id}:{step.name}:{ACTION}", [])
            statuses = sorted(c.status for c in owed)
            accepted = _accepted_completions(evidence, saga.id, step.name)
            if accepted is not None and accepted != 1:
                # The orchestrator's side: the step went on by exactly one completion.
                found.append(
                    Violation(
                        name,
                        f"saga completed but the orchestrator accepted {accepted} "
                        f"completions of {step.name}",
                        saga.id,
                        step.participant,
                    )
                )
            if statuses != ["delivered"]:
                found.append(
                    Violation(
                        name,
                        f"saga completed but the completions of {step.name} are {statuses}",
                        saga.id,
                        step.participant,
                    )
                )
    return checked, found


def _accepted_completions(evidence: Evidence, saga_id: str, step: str) -> int | None:
    """Completions of ``step`` the orchestrator took, from its events (None: not collected)."""
    events = evidence.events.get(saga_id)
    if events is None:
        return None
    return sum(
        1
        for e in events
        if e.get("kind") == "callback" and e.get("step") == step and e.get("outcome") == "succeeded"
    )


GENERIC: tuple[Callable[[Evidence, Rows], InvariantResult], ...] = (
    check_completed,
    check_compensated,
    check_reverse_order,
    check_no_action_after_compensation,
    check_same_key,
    check_callbacks,
)


def verify(evidence: Evidence) -> list[InvariantResult]:
    """Every invariant: the generic ones, plus the example services' when their data is there."""
    rows = evidence.rows_by_call()
    results = [check_terminal(evidence), *(check(evidence, rows) for check in GENERIC)]
    if evidence.business is not None:
        results.extend(business.verify_business(evidence))
    return results


def _steps(saga: SagaRecord) -> str:
    return ", ".join(f"{step} {status}" for step, status in saga.step_statuses.items())
