"""The checker of a recorded client history: pure functions over its entries.

Per saga, from the operations of :mod:`orchestrator.check.history` (each an
invoke and one completion), it verifies that:

- ``status_path``: each status observed follows its real-time predecessor (the
  last observation completed before it was invoked) along the machine's own
  transition table (:data:`~orchestrator.machine.SAGA_TRANSITIONS`); an edge
  out of a status no worker drives (``failed``) counts only after an operator
  retry or compensate that was invoked before the observation completed and
  did not definitely fail;
- ``start_kept``: an acknowledged start is found by a later read, and every
  acknowledged start under one ``Idempotency-Key`` names the same saga;
- ``cancel_honoured``: a saga whose cancel was acknowledged (which the machine
  only accepts before the pivot) ends ``compensated``, and its pivot's action
  is never called or seen succeeded after it;
- ``requests_accounted``: the history endpoint holds one ``operator`` event per
  request that took effect: at least one per acknowledged request, at most
  one per request not definitely refused (a ``fail`` that left an effect);
- ``chain``: the history's events (ordered by their ``id``, the only
  ordering key the store keeps: events carry no per-saga version) begin with
  ``started`` and their transitions form one unbroken chain the machine
  allows (one transition is one write, which may take several of the table's
  steps), containing every status a read saw before it was fetched;
- ``versions_monotonic``: the saga's ``version`` never goes backwards across
  observations that do not overlap in time, and one version is one status.

A completion missing from the history (the client died) counts as ``info``.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.check.evidence import InvariantResult, Violation
from orchestrator.check.history import Entry
from orchestrator.machine import ACTIVE_STATUSES, SAGA_TRANSITIONS
from orchestrator.machine.tables import SAGA_INITIAL

INITIAL = SAGA_INITIAL.value
#: Status changes a worker makes on its own.
MACHINE_EDGES = frozenset(
    (a.value, b.value)
    for a, targets in SAGA_TRANSITIONS.items()
    if a in ACTIVE_STATUSES
    for b in targets
)
#: Status changes out of a status no worker drives: only an operator's request makes them.
OPERATOR_EDGES = frozenset(
    (a.value, b.value)
    for a, targets in SAGA_TRANSITIONS.items()
    if a not in ACTIVE_STATUSES
    for b in targets
)
OPERATOR_REQUESTS = ("cancel", "retry", "compensate")
LICENSING = ("retry", "compensate")

#: Each rule and the anomaly kinds it reports.
RULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "status_path": (
        "observed statuses follow the machine's transitions in real-time order",
        ("illegal_status_change",),
    ),
    "start_kept": (
        "an acknowledged start is never lost; one Idempotency-Key names one saga",
        ("lost_start", "start_key_split"),
    ),
    "cancel_honoured": (
        "a cancel acknowledged before the pivot ends compensated, the pivot never run",
        ("cancel_not_compensated", "pivot_after_cancel"),
    ),
    "requests_accounted": (
        "operator events in the history = requests that took effect",
        ("acknowledged_request_lost", "refused_request_took_effect"),
    ),
    "chain": (
        "the saga's history is one unbroken chain of transitions from its start",
        ("history_gap", "history_order"),
    ),
    "versions_monotonic": (
        "observed versions never go backwards; one version, one status",
        ("version_backwards", "version_fork"),
    ),
}
KINDS = {kind: rule for rule, (_, kinds) in RULES.items() for kind in kinds}


@dataclass(frozen=True)
class Operation:
    """An invoke and its completion."""

    f: str
    op: int
    process: str
    saga: str | None
    key: str | None
    type: str
    """ok, fail or info (info also when the completion is missing)."""
    invoked: int
    completed: float
    """Monotonic ns; infinity for an operation that never completed."""
    value: Mapping[str, Any] | None = None
    http_status: int | None = None
    wall: str = ""

    @property
    def status(self) -> str | None:
        """The saga status this operation observed (``ok`` only)."""
        if self.type != "ok" or self.value is None:
            return None
        if "events" in self.value:
            return chain_end(self.value["events"])
        status = self.value.get("status")
        return str(status) if status is not None else None

    @property
    def version(self) -> int | None:
        """The saga version this operation observed, if it shows one."""
        if self.type != "ok" or self.value is None or self.value.get("version") is None:
            return None
        return int(self.value["version"])

    def took_effect_maybe(self) -> bool:
        """It did not definitely fail."""
        return self.type != "fail"

    def precedes(self, other: Operation) -> bool:
        """This operation completed before ``other`` was invoked."""
        return self.completed < other.invoked


@dataclass(frozen=True)
class Anomaly:
    """One thing the history shows that a correct system cannot do."""

    kind: str
    saga_id: str | None
    message: str

    def as_json(self) -> dict[str, Any]:
        """The anomaly as JSON."""
        return {"kind": self.kind, "saga_id": self.saga_id, "message": self.message}


@dataclass(frozen=True)
class Verdict:
    """What checking a history found."""

    entries: int
    operations: Mapping[str, Mapping[str, int]]
    """f -> completion type -> count."""
    sagas: int
    checked: Mapping[str, int]
    """rule -> how many sagas (or keys) it judged."""
    anomalies: tuple[Anomaly, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """No anomaly."""
        return not self.anomalies

    def by_kind(self) -> dict[str, list[str | None]]:
        """Anomaly kind -> the sagas it was found in."""
        found: dict[str, list[str | None]] = defaultdict(list)
        for anomaly in self.anomalies:
            found[anomaly.kind].append(anomaly.saga_id)
        return dict(sorted(found.items()))

    def as_json(self) -> dict[str, Any]:
        """The verdict as JSON (every anomaly included)."""
        return {
            "ok": self.ok,
            "entries": self.entries,
            "operations": {f: dict(types) for f, types in self.operations.items()},
            "sagas": self.sagas,
            "checked": dict(self.checked),
            "anomalies_by_kind": self.by_kind(),
            "anomalies": [a.as_json() for a in self.anomalies],
            "notes": list(self.notes),
        }

    def results(self) -> list[InvariantResult]:
        """One invariant result per rule, named ``history_<rule>``, for the campaign's table."""
        return [
            InvariantResult(
                f"history_{rule}",
                description,
                self.checked.get(rule, 0),
                tuple(
                    Violation(f"history_{rule}", f"{a.kind}: {a.message}", a.saga_id)
                    for a in self.anomalies
                    if KINDS[a.kind] == rule
                ),
            )
            for rule, (description, _) in RULES.items()
        ]


NOTES = (
    "history events carry no per-saga version: their order is their global id, "
    "so the chain is checked through the transitions' from/to",
)


def operations(entries: Iterable[Entry]) -> list[Operation]:
    """Pair each invoke with its completion, in invoke order."""
    invokes: dict[int, Entry] = {}
    done: dict[int, Entry] = {}
    for entry in entries:
        (invokes if entry.type == "invoke" else done)[entry.op] = entry
    ops = []
    for number, began in sorted(invokes.items(), key=lambda item: item[1].index):
        end = done.get(number)
        ops.append(
            Operation(
                f=began.f,
                op=number,
                process=began.process,
                saga=began.saga or (end.saga if end else None),
                key=began.key,
                type=end.type if end else "info",
                invoked=began.time_ns,
                completed=end.time_ns if end else float("inf"),
                value=end.value if end else None,
                http_status=end.http_status if end else None,
                wall=end.wall if end else began.wall,
            )
        )
    return ops


def chain_end(events: Sequence[Mapping[str, Any]]) -> str | None:
    """The status the history's events leave the saga in."""
    status: str | None = None
    for event in events:
        if event.get("kind") == "started":
            status = str(event.get("status") or INITIAL)
        elif event.get("kind") == "transition":
            status = str(event.get("to"))
    return status


def reachable(start: str, goal: str, licensed: bool) -> bool:
    """``goal`` follows ``start`` along the table (operator edges only when ``licensed``)."""
    edges = MACHINE_EDGES | (OPERATOR_EDGES if licensed else frozenset())
    seen, frontier = {start}, [start]
    while frontier:
        here = frontier.pop()
        if here == goal:
            return True
        for a, b in edges:
            if a == here and b not in seen:
                seen.add(b)
                frontier.append(b)
    return False


def check_history(entries: Sequence[Entry]) -> Verdict:
    """Every rule over every saga of the history."""
    ops = operations(entries)
    per_saga: dict[str, list[Operation]] = defaultdict(list)
    for op in ops:
        if op.saga is not None:
            per_saga[op.saga].append(op)
    found: list[Anomaly] = []
    checked: Counter[str] = Counter()
    for saga_id, mine in sorted(per_saga.items()):
        observations = sorted((o for o in mine if o.status is not None), key=lambda o: o.completed)
        found += _status_path(saga_id, mine, observations)
        found += _versions(saga_id, observations)
        found += _lost_starts(saga_id, mine)
        history = _latest_history(mine)
        if any(o.f == "cancel" and o.type == "ok" for o in mine):
            checked["cancel_honoured"] += 1
            found += _cancel(saga_id, mine, observations, history)
        if history is not None:
            checked["requests_accounted"] += 1
            checked["chain"] += 1
            found += _accounted(saga_id, mine, history)
            found += _chain(saga_id, mine, history)
        checked["status_path"] += 1
        checked["versions_monotonic"] += 1
        checked["start_kept"] += any(o.f == "start" and o.type == "ok" for o in mine)
    split, keys = _key_splits(ops)
    found += split
    checked["start_kept"] += keys
    table: dict[str, Counter[str]] = defaultdict(Counter)
    for op in ops:
        table[op.f][op.type] += 1
    return Verdict(
        entries=len(entries),
        operations={f: dict(sorted(c.items())) for f, c in sorted(table.items())},
        sagas=len(per_saga),
        checked=dict(checked),
        anomalies=tuple(found),
        notes=NOTES,
    )


#: Anomaly kinds that a history still being written cannot show by mistake: a start
#: not read back yet, or a cancel not finished yet, is no anomaly until the end.
LIVE_KINDS = frozenset(
    {"illegal_status_change", "version_backwards", "version_fork", "start_key_split"}
)


def live_anomalies(entries: Sequence[Entry]) -> int:
    """Anomalies already certain in a history still being recorded (the live display)."""
    return sum(1 for a in check_history(entries).anomalies if a.kind in LIVE_KINDS)


def _licensed(mine: Sequence[Operation], before: float) -> bool:
    return any(o.f in LICENSING and o.took_effect_maybe() and o.invoked < before for o in mine)


def _predecessor(observations: Sequence[Operation], op: Operation) -> Operation | None:
    earlier = [o for o in observations if o.precedes(op)]
    return max(earlier, key=lambda o: o.completed) if earlier else None


def _status_path(
    saga_id: str, mine: Sequence[Operation], observations: Sequence[Operation]
) -> list[Anomaly]:
    for op in observations:
        before = _predecessor(observations, op)
        start = before.status if before is not None else INITIAL
        assert start is not None
        assert op.status is not None
        if not reachable(start, op.status, _licensed(mine, op.completed)):
            seen = f"{op.f} at {op.wall}" if before is None else f"{before.f} then {op.f}"
            return [
                Anomaly(
                    "illegal_status_change",
                    saga_id,
                    f"observed {start} then {op.status} ({seen}): no path of the machine "
                    "leads there without an operator request",
                )
            ]
    return []


def _versions(saga_id: str, observations: Sequence[Operation]) -> list[Anomaly]:
    versioned = [o for o in observations if o.version is not None]
    for op in versioned:
        earlier = [o for o in versioned if o.precedes(op)]
        if not earlier:
            continue
        highest = max(earlier, key=lambda o: o.version or 0)
        assert highest.version is not None
        assert op.version is not None
        if op.version < highest.version:
            return [
                Anomaly(
                    "version_backwards",
                    saga_id,
                    f"{op.f} saw version {op.version} after {highest.f} saw {highest.version}",
                )
            ]
        same = [o for o in earlier if o.version == op.version and o.status != op.status]
        if same:
            return [
                Anomaly(
                    "version_fork",
                    saga_id,
                    f"version {op.version} seen as {same[0].status} and as {op.status}",
                )
            ]
    return []


def _lost_starts(saga_id: str, mine: Sequence[Operation]) -> list[Anomaly]:
    starts = [o for o in mine if o.f == "start" and o.type == "ok"]
    if not starts:
        return []
    first = min(starts, key=lambda o: o.completed)
    later = [o for o in mine if o.invoked > first.completed and o.f in ("read", "history")]
    missing = [o for o in later if o.type == "fail" and o.http_status == 404]
    if missing:
        return [
            Anomaly(
                "lost_start",
                saga_id,
                f"start acknowledged at {first.wall}, then {missing[0].f} answered 404",
            )
        ]
    if not any(o.type == "ok" for o in later):
        return [
            Anomaly("lost_start", saga_id, f"start acknowledged at {first.wall}, never read again")
        ]
    return []


def _key_splits(ops: Sequence[Operation]) -> tuple[list[Anomaly], int]:
    named: dict[str, set[str]] = defaultdict(set)
    for op in ops:
        if op.f == "start" and op.type == "ok" and op.key is not None and op.saga is not None:
            named[op.key].add(op.saga)
    found = [
        Anomaly(
            "start_key_split",
            sorted(ids)[0],
            f"Idempotency-Key {key} started {len(ids)} sagas: {sorted(ids)}",
        )
        for key, ids in sorted(named.items())
        if len(ids) > 1
    ]
    return found, len(named)


def _latest_history(mine: Sequence[Operation]) -> Operation | None:
    fetched = [o for o in mine if o.f == "history" and o.type == "ok" and o.value is not None]
    return max(fetched, key=lambda o: o.completed) if fetched else None


def _events(history: Operation) -> list[Mapping[str, Any]]:
    assert history.value is not None
    return list(history.value.get("events") or [])


def _cancel(
    saga_id: str,
    mine: Sequence[Operation],
    observations: Sequence[Operation],
    history: Operation | None,
) -> list[Anomaly]:
    acked = min((o for o in mine if o.f == "cancel" and o.type == "ok"), key=lambda o: o.completed)
    found = []
    final = observations[-1] if observations else None
    if final is None or final.status != "compensated":
        found.append(
            Anomaly(
                "cancel_not_compensated",
                saga_id,
                f"cancel acknowledged at {acked.wall} (before the pivot) but the saga ended "
                f"{final.status if final else 'unseen'}",
            )
        )
    pivot = next(
        (o.value.get("pivot") for o in observations if o.value and "pivot" in o.value), None
    )
    if pivot is None:
        return found
    succeeded = [
        o
        for o in observations
        if acked.precedes(o) and (o.value or {}).get("steps", {}).get(pivot) == "succeeded"
    ]
    events = _events(history) if history is not None else []
    cancel_at = next(
        (
            n
            for n, e in enumerate(events)
            if e.get("kind") == "operator" and e.get("action") == "cancel"
        ),
        None,
    )
    called = cancel_at is not None and any(
        e.get("kind") == "call" and e.get("step") == pivot and e.get("phase") == "action"
        for e in events[cancel_at + 1 :]
    )
    if succeeded or called:
        how = "its action was called" if called else f"{succeeded[0].f} saw it succeeded"
        found.append(
            Anomaly(
                "pivot_after_cancel",
                saga_id,
                f"cancel acknowledged at {acked.wall}, then the pivot {pivot} ran: {how}",
            )
        )
    return found


def _accounted(saga_id: str, mine: Sequence[Operation], history: Operation) -> list[Anomaly]:
    recorded = Counter(
        str(e.get("action")) for e in _events(history) if e.get("kind") == "operator"
    )
    found = []
    for action in OPERATOR_REQUESTS:
        asked = [o for o in mine if o.f == action and o.invoked < history.completed]
        acked = sum(1 for o in asked if o.type == "ok" and o.precedes(history))
        maybe = sum(1 for o in asked if o.took_effect_maybe())
        # A request overlapping the read of the history may or may not be in it.
        settled = all(o.precedes(history) for o in asked)
        if recorded[action] < acked:
            found.append(
                Anomaly(
                    "acknowledged_request_lost",
                    saga_id,
                    f"{acked} {action} requests acknowledged, {recorded[action]} in the history",
                )
            )
        elif settled and recorded[action] > maybe:
            refused = sum(1 for o in asked if o.type == "fail")
            found.append(
                Anomaly(
                    "refused_request_took_effect",
                    saga_id,
                    f"the history records {recorded[action]} {action} requests; only {maybe} "
                    f"may have taken effect ({refused} refused)",
                )
            )
    return found


def _chain(saga_id: str, mine: Sequence[Operation], history: Operation) -> list[Anomaly]:
    events = _events(history)
    ids = [e.get("id") for e in events]
    found = []
    numbers = [i for i in ids if isinstance(i, int)]
    if len(numbers) < len(ids) or any(b <= a for a, b in itertools.pairwise(numbers)):
        found.append(Anomaly("history_order", saga_id, f"event ids are not increasing: {ids}"))
    gap = _chain_gap(events)
    if gap is not None:
        found.append(Anomaly("history_gap", saga_id, gap))
        return found
    chain = {str(e.get("status") or INITIAL) for e in events if e.get("kind") == "started"}
    chain |= {str(e.get("to")) for e in events if e.get("kind") == "transition"}
    unrecorded = sorted(
        {
            o.status
            for o in mine
            if o.status is not None and o is not history and o.precedes(history)
        }
        - chain
    )
    if unrecorded:
        found.append(
            Anomaly(
                "history_gap",
                saga_id,
                f"reads saw {', '.join(unrecorded)}, which the history never records",
            )
        )
    return found


def _chain_gap(events: Sequence[Mapping[str, Any]]) -> str | None:
    if not events or events[0].get("kind") != "started":
        return "the history does not begin with its started event"
    if sum(1 for e in events if e.get("kind") == "started") > 1:
        return "the history has more than one started event"
    status = str(events[0].get("status") or INITIAL)
    asked = False
    for event in events[1:]:
        if event.get("kind") == "operator":
            asked = True
        if event.get("kind") != "transition":
            continue
        source, target = str(event.get("from")), str(event.get("to"))
        if source != status:
            return f"transition {source} -> {target} follows {status}: a transition is missing"
        # One write may make several of the table's changes (a first step refused
        # leaves nothing to undo: running -> compensated at once).
        if not reachable(source, target, licensed=asked):
            return f"transition {source} -> {target} is not one the machine makes"
        status, asked = target, False
    return None


def render_verdict(verdict: Verdict, path: object = None) -> str:
    """The verdict as text: operations, then each anomaly, then one line of verdict."""
    ops = " · ".join(
        f"{f} " + "/".join(f"{t} {n}" for t, n in types.items())
        for f, types in verdict.operations.items()
    )
    lines = [f"history        {verdict.entries} entries, {verdict.sagas} sagas: {ops or 'none'}"]
    for anomaly in verdict.anomalies:
        where = f" [{anomaly.saga_id}]" if anomaly.saga_id else ""
        lines.append(f"  ✗ {anomaly.kind}{where}: {anomaly.message}")
    kinds = ", ".join(f"{k} x{len(v)}" for k, v in verdict.by_kind().items())
    lines.append(
        ("history clean" if verdict.ok else f"history ANOMALIES: {kinds}")
        + (f" · {path}" if path else "")
    )
    return "\n".join(lines)
