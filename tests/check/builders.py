"""Hand-built evidence of a small, correct campaign, for planting violations into.

Four sagas against the example services, with the ledgers, wire calls and
business rows a correct system leaves behind:

- ``s-done``: ``order``, completed (charged 10 to acct-000 for 1 unit of sku-00);
- ``s-refused``: ``order``, the charge refused, create_order and reserve_stock
  compensated in reverse order;
- ``s-parallel``: ``order_parallel``, reserve_stock refused, create_order compensated;
- ``s-tomb``: ``order``, create_order's outcome unknown, its compensation came first
  and left a tombstone.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.check.business import BusinessSnapshot, Item, Movement, Order, Shipment
from orchestrator.check.config import definition
from orchestrator.check.evidence import DefinitionInfo, Evidence, LedgerRow, SagaRecord, WireCall

ORDER = DefinitionInfo.from_json(definition("order"))
PARALLEL = DefinitionInfo.from_json(definition("order_parallel"))
T0 = datetime(2026, 1, 1, tzinfo=UTC)
INPUT = {"account": "acct-000", "sku": "sku-00", "qty": 1, "amount": 10}
PARTICIPANT = {step.name: step.participant for step in ORDER.steps}
PATHS = {
    (step.name, phase): path
    for step in ORDER.steps
    for phase, path in (("action", step.action_path), ("compensation", step.compensation_path))
    if path is not None
}


def at(second: float) -> datetime:
    return T0 + timedelta(seconds=second)


def row(saga: str, step: str, phase: str, status: str, second: float) -> LedgerRow:
    return LedgerRow(
        participant=PARTICIPANT[step],
        key=f"{saga}:{step}:{phase}",
        saga_id=saga,
        step=step,
        phase=phase,
        status=status,
        applied_at=at(second),
    )


def saga(saga_id: str, status: str, defn: DefinitionInfo, **steps: str) -> SagaRecord:
    statuses = {s.name: steps.get(s.name, "pending") for s in defn.steps}
    return SagaRecord(saga_id, defn.name, status, dict(INPUT), statuses)


def clean_rows() -> list[LedgerRow]:
    # The completed saga applied every step of the definition, whatever they are.
    done = [row("s-done", s.name, "action", "applied", 1 + n) for n, s in enumerate(ORDER.steps)]
    return [
        *done,
        row("s-refused", "create_order", "action", "compensated", 1),
        row("s-refused", "reserve_stock", "action", "compensated", 2),
        row("s-refused", "charge", "action", "rejected", 3),
        row("s-refused", "reserve_stock", "compensation", "applied", 4),
        row("s-refused", "create_order", "compensation", "applied", 5),
        row("s-parallel", "create_order", "action", "compensated", 1),
        row("s-parallel", "reserve_stock", "action", "rejected", 1.5),
        row("s-parallel", "create_order", "compensation", "applied", 3),
        row("s-tomb", "create_order", "action", "tombstone", 2),
        row("s-tomb", "create_order", "compensation", "applied", 2),
    ]


def clean_business() -> BusinessSnapshot:
    return BusinessSnapshot(
        opening_balances={"acct-000": 100},
        initial_stock={"sku-00": 10},
        balances={"acct-000": 90},
        movements=(
            Movement("acct-000", "opening", 100, None),
            Movement("acct-000", "charge", -10, "s-done"),
        ),
        items=(Item("sku-00", available=9, reserved=1, committed=0),),
        orders=(
            Order("o-done", "s-done", "approved", "acct-000", "sku-00", 1, 10),
            Order("o-refused", "s-refused", "rejected", "acct-000", "sku-00", 1, 10),
            Order("o-parallel", "s-parallel", "rejected", "acct-000", "sku-00", 1, 10),
        ),
        shipments=(Shipment("sh-done", "s-done", "created"),),
    )


def clean_wire() -> list[WireCall]:
    calls = []
    for r in clean_rows():
        if r.status == "tombstone":
            continue
        path = PATHS[(r.step, r.phase)]
        # Each call sent twice (a retry), with the same key, as it must be.
        for attempt in (1, 2):
            calls.append(
                WireCall(
                    "worker1", r.participant, "POST", path, r.key, r.saga_id, r.step, attempt, 200
                )
            )
    return calls


def evidence(
    *,
    rows: list[LedgerRow] | None = None,
    sagas: list[SagaRecord] | None = None,
    business: BusinessSnapshot | None = None,
    wire: list[WireCall] | None = None,
) -> Evidence:
    records = sagas or [
        saga("s-done", "completed", ORDER, **dict.fromkeys(PARTICIPANT, "succeeded")),
        saga(
            "s-refused",
            "compensated",
            ORDER,
            create_order="compensated",
            reserve_stock="compensated",
            charge="rejected",
        ),
        saga(
            "s-parallel",
            "compensated",
            PARALLEL,
            create_order="compensated",
            reserve_stock="rejected",
        ),
        saga("s-tomb", "compensated", ORDER, create_order="compensated"),
    ]
    ledgers: dict[str, list[LedgerRow]] = {}
    for r in clean_rows() if rows is None else rows:
        ledgers.setdefault(r.participant, []).append(r)
    return Evidence(
        definitions={"order": ORDER, "order_parallel": PARALLEL},
        sagas={s.id: s for s in records},
        ledgers={k: tuple(v) for k, v in ledgers.items()},
        wire=tuple(clean_wire() if wire is None else wire),
        business=clean_business() if business is None else business,
    )


def changed(rows: list[LedgerRow], key: str, **changes: Any) -> list[LedgerRow]:
    """``rows`` with the row of ``key`` changed."""
    assert any(r.key == key for r in rows), key
    return [replace(r, **changes) if r.key == key else r for r in rows]
