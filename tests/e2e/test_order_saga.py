"""The shipped ``order`` saga, end to end, through the orchestrator on PostgreSQL.

The four example services (orders, payments, inventory, shipping) each get a
throwaway PostgreSQL database (migrated with the kit, seeded with the registry's
demo data plus a few accounts and items of this test) and are served over real
HTTP with faults enabled. The orchestrator is a real ``saga serve`` process on a
cloned orchestrator database, configured with the four participants, and
``ORDER_DEFINITION`` is registered through its API.

200 ``order`` sagas run, 25 in flight at a time. By construction some cannot
succeed: an account that is always short of money (fails at ``charge``, the
pivot, after ``reserve_stock``), an item that is always short of stock (fails at
``reserve_stock``), and two contested resources where exactly three sagas can
win whatever the interleaving (the demo account ``carol``: 100 for charges of
30; the demo item ``C3``: 3 units for orders of 1). The payments service answers
20 % of its ``POST /charges`` calls with an ``error_after_commit`` fault: the
charge is committed, the orchestrator sees a 500 and retries with the same key.

Checked from the participants' own data, not from the orchestrator's word:
every saga terminal (none ``failed``) and ending as designed; money conserved
exactly (per account and in total, ``GET /audit`` consistent, the movements show
one charge per completed saga and nothing for a compensated one); stock conserved
exactly (per SKU ``available + reserved + committed`` constant, the units taken
equal to the completed sagas' quantities, every reservation of a compensated saga
released); each saga's order approved iff it completed; each service's ledger
holding exactly the keys the saga's outcome implies; the orchestrator's history
showing one transition into the final status.

Two findings are pinned as strict xfails at the end: the order saga never commits
its reservations (completed orders' units stay ``reserved``), and a kit fault rule
counts (and spends ``count`` on) calls it did not fail.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from participants.inventory.schema import items
from participants.kit import DemoData, insert_missing, seed_database, upgrade_async, utcnow
from participants.order_saga import EXAMPLE_INPUT, ORDER_DEFINITION
from participants.payments.schema import accounts, movements
from participants.registry import SERVICES
from tests.e2e.harness import FINAL, SagaProcess, SagaServers
from tests.support.databases import throwaway_database
from tests.support.servers import serve_app

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

SAGAS = 200
IN_FLIGHT = 25
FAULT_PROBABILITY = 0.2
FAULT_SEED = 20261124

# This test's own rows, next to the demo data (alice, bob, carol; A1, B2, C3).
RICH = {f"e2e-rich-{i}": 1_000_000 for i in range(4)}
BROKE, BROKE_BALANCE = "e2e-broke", 50
WIDE = {f"E2E-W{i}": 1_000 for i in range(3)}
SCARCE, SCARCE_STOCK = "E2E-SCARCE", 2
CONTESTED_ACCOUNT, CONTESTED_AMOUNT = "carol", 30  # demo: 100 -> exactly 3 charges of 30
CONTESTED_SKU = "C3"  # demo: 3 units -> exactly 3 orders of 1

Clients = dict[str, httpx.AsyncClient]
#: What the services' refusals say (payments: "... holds N, M needed"; inventory: "... M wanted").
REFUSAL = {"charge": "needed", "reserve_stock": "wanted"}


# -- the services and the orchestrator ------------------------------------------------------


async def _more_accounts(conn: AsyncConnection) -> None:
    now = utcnow()
    for account, balance in {**RICH, BROKE: BROKE_BALANCE}.items():
        row = {"id": account, "owner": account, "balance": balance, "version": 1, "updated_at": now}
        if await insert_missing(conn, accounts, [row]):
            opening = {
                "account_id": account,
                "kind": "opening",
                "amount": balance,
                "balance_after": balance,
                "created_at": now,
            }
            await conn.execute(movements.insert().values(opening))


async def _more_items(conn: AsyncConnection) -> None:
    now = utcnow()
    rows = [
        {
            "sku": sku,
            "name": sku,
            "available": stock,
            "reserved": 0,
            "committed": 0,
            "version": 1,
            "updated_at": now,
        }
        for sku, stock in {**WIDE, SCARCE: SCARCE_STOCK}.items()
    ]
    await insert_missing(conn, items, rows)


@pytest.fixture
async def services() -> AsyncIterator[Clients]:
    """The four example services, each on its own migrated, seeded PostgreSQL database."""
    with ExitStack() as databases:
        urls = {
            name: databases.enter_context(throwaway_database(f"e2e_{name}")) for name in SERVICES
        }
        for name, url in urls.items():
            await upgrade_async(name, url)
            await SERVICES[name].seed(url)
        await seed_database(urls["payments"], DemoData(tables=[], seed=_more_accounts))
        await seed_database(urls["inventory"], DemoData(tables=[], seed=_more_items))
        async with AsyncExitStack() as stack:
            clients: Clients = {}
            for name, spec in SERVICES.items():
                app = spec.create_app(spec.settings(database_url=urls[name], enable_faults=True))
                base = await stack.enter_async_context(serve_app(app))
                clients[name] = await stack.enter_async_context(
                    httpx.AsyncClient(base_url=base, timeout=30)
                )
            yield clients


@dataclass
class Orchestrator:
    client: httpx.AsyncClient
    process: SagaProcess


@pytest.fixture
async def orchestrator(
    request: pytest.FixtureRequest, tmp_path: Path, database_url: str, services: Clients
) -> AsyncIterator[Orchestrator]:
    """A ``saga serve`` process configured with the four services; ``order`` registered."""
    participants = {name: [str(c.base_url).rstrip("/")] for name, c in services.items()}
    servers = SagaServers(tmp_path, database_url, participants)
    try:
        process = await servers.start()
        async with httpx.AsyncClient(base_url=process.url, timeout=30) as client:
            response = await client.post("/v1/definitions", json=ORDER_DEFINITION)
            assert response.status_code in (200, 201), response.text
            yield Orchestrator(client, process)
    finally:
        await servers.stop_all()
        report = getattr(request.node, "report_call", None)
        if report is None or report.failed:
            servers.dump_logs()


# -- the plan ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    input: dict[str, Any]
    group: str
    #: The outcome the data forces, or None for the contested groups.
    expected: str | None
    #: The step a compensated saga of this group is rejected at.
    rejected_at: str | None


def plan() -> list[Planned]:
    rng = random.Random(FAULT_SEED)
    wide, rich = sorted(WIDE), sorted(RICH)
    planned: list[Planned] = []
    for i in range(120):  # enough of everything: completes
        saga_input = {
            "account": rich[i % len(rich)],
            "sku": wide[i % len(wide)],
            "qty": rng.randint(1, 3),
            "amount": rng.randint(10, 90),
        }
        planned.append(Planned(saga_input, "good", "completed", None))
    for _ in range(30):  # the account never holds enough: rejected at the pivot
        saga_input = {
            "account": BROKE,
            "sku": rng.choice(wide),
            "qty": rng.randint(1, 2),
            "amount": rng.randint(BROKE_BALANCE + 1, 500),
        }
        planned.append(Planned(saga_input, "broke", "compensated", "charge"))
    for _ in range(30):  # the item never holds enough: rejected at reserve_stock
        saga_input = {
            "account": rng.choice(rich),
            "sku": SCARCE,
            "qty": rng.randint(SCARCE_STOCK + 1, 6),
            "amount": rng.randint(10, 90),
        }
        planned.append(Planned(saga_input, "scarce", "compensated", "reserve_stock"))
    for _ in range(10):  # 3 of 10 win carol's 100
        saga_input = {"account": CONTESTED_ACCOUNT, "sku": "A1", "qty": 1, "amount": 30}
        planned.append(Planned(saga_input, "contested money", None, "charge"))
    for _ in range(10):  # 3 of 10 win C3's 3 units
        saga_input = {"account": rng.choice(rich), "sku": CONTESTED_SKU, "qty": 1, "amount": 20}
        planned.append(Planned(saga_input, "contested stock", None, "reserve_stock"))
    rng.shuffle(planned)
    assert len(planned) == SAGAS
    return planned


# -- helpers -------------------------------------------------------------------------------


async def get_json(client: httpx.AsyncClient, path: str, **params: Any) -> Any:
    response = await client.get(path, params=params)
    assert response.status_code == 200, f"GET {path} {params}: {response.text}"
    return response.json()


async def run_sagas(
    client: httpx.AsyncClient, inputs: list[dict[str, Any]], timeout_s: float = 45
) -> list[dict[str, Any]]:
    """Start each saga and wait for it, ``IN_FLIGHT`` at a time; return the final sagas."""
    sem = asyncio.Semaphore(IN_FLIGHT)

    async def one(saga_input: dict[str, Any]) -> dict[str, Any]:
        async with sem:
            response = await client.post(
                "/v1/sagas", json={"definition": "order", "input": saga_input}
            )
            assert response.status_code == 201, response.text
            saga: dict[str, Any] = response.json()
            deadline = time.monotonic() + timeout_s
            while saga["status"] not in FINAL:
                if time.monotonic() > deadline:
                    raise AssertionError(f"saga not final after {timeout_s}s: {saga}")
                await asyncio.sleep(0.1)
                saga = await get_json(client, f"/v1/sagas/{saga['id']}")
            return saga

    return await asyncio.gather(*(one(i) for i in inputs))


async def gather_limited(limit: int, *calls: Any) -> list[Any]:
    sem = asyncio.Semaphore(limit)

    async def one(call: Any) -> Any:
        async with sem:
            return await call

    return await asyncio.gather(*(one(c) for c in calls))


def expected_ledgers(saga_id: str, status: str, rejected_at: str | None) -> dict[str, Any]:
    """Every key each service must hold for a saga that ended so, and its status."""

    def key(step: str, phase: str = "action") -> str:
        return f"{saga_id}:{step}:{phase}"

    if status == "completed":
        return {
            "orders": {key("create_order"): "applied", key("approve_order"): "applied"},
            "inventory": {key("reserve_stock"): "applied", key("commit_stock"): "applied"},
            "payments": {key("charge"): "applied"},
            "shipping": {key("create_shipment"): "applied"},
        }
    order_undone = {
        key("create_order"): "compensated",
        key("create_order", "compensation"): "applied",
    }
    if rejected_at == "reserve_stock":
        return {
            "orders": order_undone,
            "inventory": {key("reserve_stock"): "rejected"},
            "payments": {},
            "shipping": {},
        }
    return {
        "orders": order_undone,
        "inventory": {
            key("reserve_stock"): "compensated",
            key("reserve_stock", "compensation"): "applied",
        },
        "payments": {key("charge"): "rejected"},
        "shipping": {},
    }


def step_of(saga: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in saga["steps"] if s["name"] == name)
    return found


# -- the test ------------------------------------------------------------------------------


async def test_200_order_sagas_conserve_money_and_stock(
    orchestrator: Orchestrator, services: Clients
) -> None:
    payments, inventory, orders = services["payments"], services["inventory"], services["orders"]
    rule = await payments.post(
        "/_faults",
        json={
            "endpoint": "/charges",
            "phase": "action",
            "mode": "error_after_commit",
            "probability": FAULT_PROBABILITY,
            "seed": FAULT_SEED,
        },
    )
    assert rule.status_code == 201, rule.text
    rule_id = rule.json()["id"]

    balances_before = {a["id"]: a["balance"] for a in await get_json(payments, "/accounts")}
    items_before = {i["sku"]: i for i in await get_json(inventory, "/items")}
    assert (await get_json(payments, "/audit"))["consistent"]

    planned = plan()
    started = time.monotonic()
    sagas = await run_sagas(orchestrator.client, [p.input for p in planned])
    elapsed = time.monotonic() - started
    assert len({s["id"] for s in sagas}) == SAGAS

    # -- every saga terminal, and ending as the data forces ------------------------------
    statuses = Counter(s["status"] for s in sagas)
    assert set(statuses) <= {"completed", "compensated"}, {
        s["id"]: (s["status"], s["error"]) for s in sagas if s["status"] == "failed"
    }
    by_group: dict[str, Counter[str]] = defaultdict(Counter)
    rejected_at: dict[str, str | None] = {}
    for p, saga in zip(planned, sagas, strict=True):
        by_group[p.group][saga["status"]] += 1
        assert saga["input"] == p.input
        if p.expected is not None:
            assert saga["status"] == p.expected, (p, saga)
        if saga["status"] == "completed":
            assert saga["error"] is None, saga
            assert [s["status"] for s in saga["steps"]] == ["succeeded"] * 6, saga
            rejected_at[saga["id"]] = None
        else:
            assert saga["error"] is not None, saga
            assert p.rejected_at is not None, (p, saga)
            assert (saga["error"]["step"], saga["error"]["phase"]) == (p.rejected_at, "action")
            assert step_of(saga, p.rejected_at)["status"] == "rejected", saga
            assert REFUSAL[p.rejected_at] in saga["error"]["message"], saga["error"]
            rejected_at[saga["id"]] = p.rejected_at
    assert by_group["contested money"] == Counter(completed=3, compensated=7), by_group
    assert by_group["contested stock"] == Counter(completed=3, compensated=7), by_group
    completed = [s for s in sagas if s["status"] == "completed"]
    compensated = [s for s in sagas if s["status"] == "compensated"]

    # -- the fault really fired, and the orchestrator retried through it ---------------------
    rules = {r["id"]: r for r in await get_json(payments, "/_faults")}
    fired = rules[rule_id]["fired"]
    charge_retries = sum(
        step_of(s, "charge")["attempts"] - 1 for s in sagas if step_of(s, "charge")["attempts"]
    )
    assert fired > 0
    assert charge_retries > 0

    # -- money: conserved exactly ------------------------------------------------------------
    balances_after = {a["id"]: a["balance"] for a in await get_json(payments, "/accounts")}
    charged: Counter[str] = Counter()
    for saga in completed:
        charged[saga["input"]["account"]] += saga["input"]["amount"]
    assert set(balances_after) == set(balances_before)
    for account, before in balances_before.items():
        assert balances_after[account] == before - charged[account], account
    total_before, total_after = sum(balances_before.values()), sum(balances_after.values())
    assert total_after == total_before - sum(charged.values())
    audit = await get_json(payments, "/audit")
    assert audit["consistent"], audit
    assert audit["total_balance"] == total_after
    all_movements = await get_json(payments, "/movements")
    assert Counter(m["kind"] for m in all_movements if m["saga_id"] is not None) == Counter(
        charge=len(completed)
    )

    # -- per saga: movements, order, reservation and the four ledgers ------------------------
    async def evidence(saga: dict[str, Any]) -> dict[str, Any]:
        saga_id = saga["id"]
        found: dict[str, Any] = {
            "movements": await get_json(payments, "/movements", saga_id=saga_id),
            "orders": await get_json(orders, "/orders", saga_id=saga_id),
            "events": (await get_json(orchestrator.client, f"/v1/sagas/{saga_id}/events"))["items"],
            "ledgers": {
                name: await get_json(client, "/_ledger", saga_id=saga_id)
                for name, client in services.items()
            },
        }
        reservation = (saga["results"].get("reserve_stock") or {}).get("reservation_id")
        if reservation is not None:
            found["reservation"] = await get_json(inventory, f"/reservations/{reservation}")
        return found

    evidences = await gather_limited(20, *(evidence(s) for s in sagas))

    reserved_by_status: dict[tuple[str, str], int] = Counter()
    taken: Counter[str] = Counter()
    ledger_rows = injected_seen = 0
    for saga, found in zip(sagas, evidences, strict=True):
        saga_id, saga_input, status = saga["id"], saga["input"], saga["status"]

        # The history: one transition into the final status; the injected 500s it saw.
        finals = [
            e
            for e in found["events"]
            if e["kind"] == "transition" and (e["detail"] or {}).get("to") in FINAL
        ]
        assert [e["detail"]["to"] for e in finals] == [status], (saga_id, found["events"])
        injected_seen += sum(
            1
            for e in found["events"]
            if e["kind"] == "call"
            and (e["step"], e["phase"]) == ("charge", "action")
            and (e["detail"] or {}).get("status") == 500
            and "injected" in str((e["detail"] or {}).get("error"))
        )

        # Money: a completed saga charged once, a compensated one not at all.
        if status == "completed":
            [movement] = found["movements"]
            assert (movement["kind"], movement["account_id"], movement["amount"]) == (
                "charge",
                saga_input["account"],
                -saga_input["amount"],
            ), saga_id
            assert movement["charge_id"] == saga["results"]["charge"]["charge_id"]
        else:
            assert sum(m["amount"] for m in found["movements"]) == 0, (saga_id, found["movements"])

        # The order: one per saga, approved iff the saga completed.
        [order] = found["orders"]
        assert order["id"] == saga["results"]["create_order"]["order_id"]
        assert (order["account"], order["sku"], order["qty"], order["amount"]) == (
            saga_input["account"],
            saga_input["sku"],
            saga_input["qty"],
            saga_input["amount"],
        )
        if status == "completed":
            assert order["status"] == "approved", order
            assert order["shipment_id"] == saga["results"]["create_shipment"]["shipment_id"]
        else:
            assert order["status"] == "rejected", order

        # Stock: a completed saga's units left available; a compensated saga's came back.
        reservation = found.get("reservation")
        if status == "completed":
            taken[saga_input["sku"]] += saga_input["qty"]
            assert reservation is not None, saga
            assert reservation["status"] in ("reserved", "committed"), reservation
            reserved_by_status[saga_input["sku"], reservation["status"]] += saga_input["qty"]
        elif reservation is not None:
            assert reservation["status"] == "released", reservation

        # Ledgers: exactly the keys the outcome implies, each once.
        want = expected_ledgers(saga_id, status, rejected_at[saga_id])
        for name, rows in found["ledgers"].items():
            keys = [row["key"] for row in rows]
            assert len(keys) == len(set(keys)), (name, keys)
            for row in rows:
                assert row["key"] == f"{saga_id}:{row['step']}:{row['phase']}", row
                assert row["saga_id"] == saga_id, row
            assert {row["key"]: row["status"] for row in rows} == want[name], (name, saga_id)
            ledger_rows += len(rows)

    # Stock per SKU: available + reserved + committed never changes; the units taken are
    # exactly the completed sagas' and are held (reserved or committed) by their reservations.
    items_after = {i["sku"]: i for i in await get_json(inventory, "/items")}
    assert set(items_after) == set(items_before)
    stock_before = stock_after = 0
    for sku, before in items_before.items():
        after = items_after[sku]
        units = before["available"] + before["reserved"] + before["committed"]
        assert after["available"] + after["reserved"] + after["committed"] == units, after
        assert after["available"] == before["available"] - taken[sku], (sku, before, after)
        assert after["reserved"] == before["reserved"] + reserved_by_status[sku, "reserved"]
        assert after["committed"] == before["committed"] + reserved_by_status[sku, "committed"]
        stock_before += units
        stock_after += after["available"] + after["reserved"] + after["committed"]
    assert items_after[SCARCE] == items_before[SCARCE]  # every reservation refused
    assert items_after[CONTESTED_SKU]["available"] == 0

    # Every injected 500 reached the orchestrator as one (more than the rule's ``fired`` would
    # be a fault from nowhere; fewer is the kit counting replays, see the xfail below).
    assert 0 < injected_seen <= fired
    assert not orchestrator.process.problems(), orchestrator.process.problems()[:5]

    print(
        f"\norder sagas: {SAGAS} in {elapsed:.1f}s ({IN_FLIGHT} in flight): "
        f"completed={len(completed)} compensated={len(compensated)} failed=0 "
        f"(contested money {dict(by_group['contested money'])}, "
        f"contested stock {dict(by_group['contested stock'])}); "
        f"payments error_after_commit p={FAULT_PROBABILITY} fired={fired} "
        f"(500s seen by the orchestrator={injected_seen}, charge retries={charge_retries}); "
        f"money {total_before} -> {total_after} (charged {sum(charged.values())}, audit ok); "
        f"stock units {stock_before} -> {stock_after}, available down {sum(taken.values())} "
        f"(reserved {sum(v for (_, s), v in reserved_by_status.items() if s == 'reserved')}, "
        f"committed {sum(v for (_, s), v in reserved_by_status.items() if s == 'committed')}); "
        f"ledger rows={ledger_rows}"
    )


# -- findings ------------------------------------------------------------------------------


async def test_a_completed_order_commits_its_reserved_stock(
    orchestrator: Orchestrator, services: Clients
) -> None:
    inventory = services["inventory"]
    before = await get_json(inventory, f"/items/{EXAMPLE_INPUT['sku']}")
    [saga] = await run_sagas(orchestrator.client, [EXAMPLE_INPUT])
    assert saga["status"] == "completed", saga

    after = await get_json(inventory, f"/items/{EXAMPLE_INPUT['sku']}")
    reservation_id = saga["results"]["reserve_stock"]["reservation_id"]
    reservation = await get_json(inventory, f"/reservations/{reservation_id}")
    qty = EXAMPLE_INPUT["qty"]
    assert after["available"] == before["available"] - qty  # holds today
    assert reservation["status"] == "committed", reservation  # today: "reserved"
    assert (after["reserved"], after["committed"]) == (
        before["reserved"],
        before["committed"] + qty,
    ), after


async def test_a_kit_fault_rule_counts_only_the_calls_it_failed(services: Clients) -> None:
    payments = services["payments"]

    def headers(saga_id: str) -> dict[str, str]:
        return {
            "Idempotency-Key": f"{saga_id}:charge:action",
            "X-Saga-Id": saga_id,
            "X-Saga-Step": "charge",
            "X-Saga-Attempt": "1",
        }

    body = {"account": "alice", "amount": 10}
    first = await payments.post("/charges", json=body, headers=headers("s1"))
    assert first.status_code == 201, first.text
    rule = await payments.post(
        "/_faults", json={"endpoint": "/charges", "mode": "error_after_commit", "count": 1}
    )
    assert rule.status_code == 201, rule.text

    replay = await payments.post("/charges", json=body, headers=headers("s1"))
    assert (replay.status_code, replay.headers.get("Idempotent-Replayed")) == (201, "true")
    fresh = await payments.post("/charges", json=body, headers=headers("s2"))

    [board] = await get_json(payments, "/_faults")
    # The replay was answered from the ledger, untouched by the rule; the fresh call should
    # be the one the rule (count 1) fails. Today: fired == 1 after the replay, fresh is 201.
    assert (fresh.status_code, board["fired"]) == (500, 1), (fresh.text, board)
