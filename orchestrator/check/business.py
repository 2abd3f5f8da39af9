"""Invariants of the example services: money, stock, orders and shipments add up.

Pure, like :mod:`orchestrator.check.invariants`. They hold for definitions
built from the example services whose input is ``{"account", "sku", "qty",
"amount"}`` and which never refund a charge (it is the pivot):

- money: each account holds its opening balance minus the amounts of the
  completed sagas charged to it, its movements sum to its balance, and each
  saga moved exactly ``-amount`` (completed) or nothing (otherwise);
- stock: for each item ``available + reserved + committed`` is the seeded stock
  and the units taken (reserved or committed) are those of the completed sagas;
- orders: one order per saga that created one, approved iff the saga
  completed; one live shipment per completed saga, none otherwise.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.check.evidence import Evidence, InvariantResult, SagaRecord, Violation


@dataclass(frozen=True)
class Movement:
    """One change of a balance (``GET /movements``); charges are negative."""

    account_id: str
    kind: str
    amount: int
    saga_id: str | None


@dataclass(frozen=True)
class Item:
    """A stock item (``GET /items``)."""

    sku: str
    available: int
    reserved: int
    committed: int


@dataclass(frozen=True)
class Order:
    """An order (``GET /orders``)."""

    id: str
    saga_id: str
    status: str
    account: str
    sku: str
    qty: int
    amount: int


@dataclass(frozen=True)
class Shipment:
    """A shipment (``GET /shipments``)."""

    id: str
    saga_id: str
    status: str


@dataclass(frozen=True)
class BusinessSnapshot:
    """The example services' data after the campaign, and what was seeded before it."""

    opening_balances: Mapping[str, int]
    initial_stock: Mapping[str, int]
    balances: Mapping[str, int]
    movements: tuple[Movement, ...] = ()
    items: tuple[Item, ...] = ()
    orders: tuple[Order, ...] = ()
    shipments: tuple[Shipment, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


def _completed(evidence: Evidence) -> list[SagaRecord]:
    return [s for s in evidence.sagas.values() if s.status == "completed"]


def _int(saga: SagaRecord, name: str) -> int:
    return int(saga.input.get(name, 0))


def check_money(evidence: Evidence, data: BusinessSnapshot) -> InvariantResult:
    """Money is conserved: no balance grew or shrank beyond what completed sagas charged."""
    name = "money_conserved"
    found: list[Violation] = []
    charged: Counter[str] = Counter()
    for saga in _completed(evidence):
        charged[str(saga.input.get("account"))] += _int(saga, "amount")
    for account, opening in sorted(data.opening_balances.items()):
        expected = opening - charged[account]
        balance = data.balances.get(account)
        if balance != expected:
            diff = "missing" if balance is None else f"{balance - expected:+d}"
            found.append(
                Violation(
                    name,
                    f"account {account} holds {balance}, expected {expected} "
                    f"(opening {opening} - charges {charged[account]}; difference {diff})",
                    participant="payments",
                )
            )
    for account in sorted(set(data.balances) - set(data.opening_balances)):
        found.append(Violation(name, f"account {account} was never seeded", participant="payments"))
    totals: Counter[str] = Counter()
    per_saga: dict[str, list[Movement]] = defaultdict(list)
    for movement in data.movements:
        totals[movement.account_id] += movement.amount
        if movement.saga_id is not None:
            per_saga[movement.saga_id].append(movement)
    for account, balance in sorted(data.balances.items()):
        if totals[account] != balance:
            found.append(
                Violation(
                    name,
                    f"account {account} holds {balance} but its movements sum to {totals[account]}",
                    participant="payments",
                )
            )
    for saga_id, moves in sorted(per_saga.items()):
        known = evidence.sagas.get(saga_id)
        expected = -_int(known, "amount") if known and known.status == "completed" else 0
        net = sum(m.amount for m in moves)
        charges = sum(1 for m in moves if m.kind == "charge")
        if known is None or net != expected or charges > 1:
            kinds = [f"{m.kind} {m.amount:+d}" for m in moves]
            status = known.status if known else "unknown to the campaign"
            found.append(
                Violation(
                    name,
                    f"saga ({status}) moved {net:+d}, expected {expected:+d}: {kinds}",
                    saga_id,
                    "payments",
                )
            )
    return InvariantResult(
        name,
        "money conserved: balances = openings - completed charges, movements explain balances",
        len(data.opening_balances) + len(per_saga),
        (*found,),
    )


def check_stock(evidence: Evidence, data: BusinessSnapshot) -> InvariantResult:
    """Stock is conserved: units neither appear nor vanish, and taken units match sagas."""
    name = "stock_conserved"
    found: list[Violation] = []
    taken: Counter[str] = Counter()
    for saga in _completed(evidence):
        taken[str(saga.input.get("sku"))] += _int(saga, "qty")
    items = {item.sku: item for item in data.items}
    for sku, initial in sorted(data.initial_stock.items()):
        item = items.get(sku)
        if item is None:
            found.append(Violation(name, f"item {sku} is missing", participant="inventory"))
            continue
        total = item.available + item.reserved + item.committed
        if total != initial:
            found.append(
                Violation(
                    name,
                    f"item {sku} counts {total} units (available {item.available}, reserved "
                    f"{item.reserved}, committed {item.committed}), seeded {initial}",
                    participant="inventory",
                )
            )
        if item.reserved + item.committed != taken[sku]:
            found.append(
                Violation(
                    name,
                    f"item {sku}: {item.reserved + item.committed} units taken, "
                    f"completed sagas took {taken[sku]}",
                    participant="inventory",
                )
            )
    return InvariantResult(
        name, "stock conserved: units taken = units of completed sagas", len(items), (*found,)
    )


def check_orders(evidence: Evidence, data: BusinessSnapshot) -> InvariantResult:
    """Orders approved iff their saga completed; one live shipment per completed saga."""
    name = "orders_match_sagas"
    found: list[Violation] = []
    orders: dict[str, list[Order]] = defaultdict(list)
    for order in data.orders:
        orders[order.saga_id].append(order)
    live: Counter[str] = Counter(s.saga_id for s in data.shipments if s.status != "cancelled")
    for saga_id in sorted((set(orders) | set(live)) - set(evidence.sagas)):
        found.append(Violation(name, "order or shipment of a saga never started", saga_id))
    for saga in evidence.sagas.values():
        mine = orders.get(saga.id, [])
        statuses = sorted(o.status for o in mine)
        if saga.status == "completed":
            ok = statuses == ["approved"] and _same_terms(mine[0], saga)
        else:
            ok = statuses in ([], ["rejected"])
        if not ok:
            found.append(
                Violation(
                    name, f"saga {saga.status} but its orders are {statuses}", saga.id, "orders"
                )
            )
        shipped = live[saga.id]
        if shipped != (1 if saga.status == "completed" else 0):
            found.append(
                Violation(
                    name, f"saga {saga.status} with {shipped} live shipments", saga.id, "shipping"
                )
            )
    return InvariantResult(
        name,
        "orders approved iff their saga completed; one shipment each",
        len(evidence.sagas),
        (*found,),
    )


def _same_terms(order: Order, saga: SagaRecord) -> bool:
    wanted = saga.input
    return (order.account, order.sku, order.qty, order.amount) == (
        wanted.get("account"),
        wanted.get("sku"),
        wanted.get("qty"),
        wanted.get("amount"),
    )


def verify_business(evidence: Evidence) -> list[InvariantResult]:
    """The example services' invariants over ``evidence.business``."""
    data = evidence.business
    if data is None:
        return []
    return [check_money(evidence, data), check_stock(evidence, data), check_orders(evidence, data)]
