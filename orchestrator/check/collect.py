"""Gathering the evidence once the campaign is quiet: all of it over HTTP.

From the orchestrator's API: each saga (``GET /v1/sagas/{id}``), its history
(``/events``) and the transport fault rules with how often each fired (stored
in the database, so kills lose none of them). From each service: its ledger
(``/_ledger``), the completions it owed for callback steps (``/_callbacks``,
absent from services without callback actions), its fault board
(``/_faults``) and, for the example services, the business rows the money,
stock and order invariants need. Nothing is read from the databases
directly: what a person can look at is what is judged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from orchestrator.check.business import BusinessSnapshot, Item, Movement, Order, Shipment
from orchestrator.check.evidence import (
    CompletionRow,
    DefinitionInfo,
    Evidence,
    LedgerRow,
    SagaRecord,
    WireCall,
)
from orchestrator.check.load import ApiClient
from orchestrator.check.schedule import World

T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True)
class Collected:
    """The evidence, plus what the report counts that the invariants do not read."""

    evidence: Evidence
    histories: Mapping[str, list[dict[str, Any]]]
    transport_rules: list[dict[str, Any]] = field(default_factory=list)
    service_rules: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)


async def bounded(
    items: Iterable[T], call: Callable[[T], Awaitable[U]], limit: int = 16
) -> list[U]:
    """``call`` over ``items`` with at most ``limit`` at once, results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(item: T) -> U:
        async with gate:
            return await call(item)

    return list(await asyncio.gather(*(one(i) for i in items)))


async def _get(http: httpx.AsyncClient, url: str) -> Any:
    # The services are steady by now; a few quick retries cover a busy moment.
    for attempt in range(5):
        try:
            response = await http.get(url, timeout=60)
            response.raise_for_status()
            return response.json()
        except httpx.HTTPError:
            if attempt == 4:
                raise
            await asyncio.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


async def _completions(http: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
    response = await http.get(f"{url}/_callbacks", timeout=60)
    if response.status_code == 404:
        return []  # this service never completes by callback
    rows: list[dict[str, Any]] = await _get(http, f"{url}/_callbacks")
    return rows


async def collect(
    api: ApiClient,
    saga_ids: Iterable[str],
    participants: Mapping[str, str],
    definitions: Mapping[str, DefinitionInfo],
    *,
    world: World | None,
    wire: Iterable[WireCall] = (),
) -> Collected:
    """Read everything the verification and the report need."""
    ids = list(saga_ids)
    views = await bounded(ids, api.saga)

    histories = dict(zip(ids, await bounded(ids, api.events), strict=True))
    faults = (await api.request("GET", "/v1/faults", ok=(200, 404))).json()
    async with httpx.AsyncClient() as http:
        ledgers = {
            name: tuple(LedgerRow.from_api(name, row) for row in await _get(http, f"{url}/_ledger"))
            for name, url in participants.items()
        }
        owed = {
            name: tuple(CompletionRow.from_api(name, row) for row in await _completions(http, url))
            for name, url in participants.items()
        }
        boards = {name: await _get(http, f"{url}/_faults") for name, url in participants.items()}
        business = await _business(http, participants, world) if world is not None else None
    evidence = Evidence(
        definitions=definitions,
        sagas={view["id"]: SagaRecord.from_api(view) for view in views},
        ledgers=ledgers,
        wire=tuple(wire),
        business=business,
        completions=owed,
        events=histories,
    )
    return Collected(evidence, histories, list(faults.get("items", [])), boards)


async def _business(
    http: httpx.AsyncClient, participants: Mapping[str, str], world: World
) -> BusinessSnapshot | None:
    needed = ("payments", "inventory", "orders", "shipping")
    if not all(name in participants for name in needed):
        return None
    accounts = await _get(http, f"{participants['payments']}/accounts")
    movements = await _get(http, f"{participants['payments']}/movements")
    items = await _get(http, f"{participants['inventory']}/items")
    orders = await _get(http, f"{participants['orders']}/orders")
    shipments = await _get(http, f"{participants['shipping']}/shipments")
    return BusinessSnapshot(
        opening_balances=dict(world.balances),
        initial_stock=dict(world.stock),
        balances={a["id"]: int(a["balance"]) for a in accounts},
        movements=tuple(
            Movement(m["account_id"], m["kind"], int(m["amount"]), m.get("saga_id"))
            for m in movements
        ),
        items=tuple(
            Item(i["sku"], int(i["available"]), int(i["reserved"]), int(i["committed"]))
            for i in items
        ),
        orders=tuple(
            Order(
                o["id"],
                o["saga_id"],
                o["status"],
                o["account"],
                o["sku"],
                int(o["qty"]),
                int(o["amount"]),
            )
            for o in orders
        ),
        shipments=tuple(Shipment(s["id"], s["saga_id"], s["status"]) for s in shipments),
    )
