"""ORDER_DEFINITION against the four example services, driven step by step as the
orchestrator would: templates resolved, protocol headers sent, compensations in reverse."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from importlib import import_module
from typing import Any

import httpx
import pytest

from participants.kit import EffectRouter
from participants.order_saga import EXAMPLE_INPUT, ORDER_DEFINITION
from participants.registry import SERVICES
from tests.participants.conftest import MakeDatabase, start
from tests.participants.helpers import key, ledger
from tests.support.servers import serve_app

Clients = dict[str, httpx.AsyncClient]
STEPS: list[dict[str, Any]] = ORDER_DEFINITION["steps"]


def effects_of(service: str) -> EffectRouter:
    effects: EffectRouter = import_module(f"participants.{service}.app").effects
    return effects


def test_the_definition_matches_the_services() -> None:
    kinds = [step["kind"] for step in STEPS]
    assert kinds == [
        "compensatable",
        "compensatable",
        "pivot",
        "retriable",
        "retriable",
        "retriable",
    ]
    for step in STEPS:
        effects = effects_of(step["participant"])
        assert step["action"]["path"] in {spec.path for spec in effects.actions}, step["name"]
        if "compensation" in step:
            undoes = {spec.path: spec.undoes for spec in effects.compensations}
            assert undoes[step["compensation"]["path"]] == step["action"]["path"]


def resolve(template: Any, saga_input: dict[str, Any], results: dict[str, Any]) -> Any:
    """The definition format's templates: ``$.input.<f>`` and ``$.results.<step>.<f>``."""
    if isinstance(template, dict):
        return {k: resolve(v, saga_input, results) for k, v in template.items()}
    if isinstance(template, str) and template.startswith("$.input."):
        return saga_input[template.removeprefix("$.input.")]
    if isinstance(template, str) and template.startswith("$.results."):
        step, field = template.removeprefix("$.results.").split(".", 1)
        return results[step][field]
    return template


async def run_saga(clients: Clients, saga: str, saga_input: dict[str, Any]) -> dict[str, Any]:
    """Forward until a step is rejected, then compensate the steps done, newest first."""
    results: dict[str, Any] = {}
    done: list[dict[str, Any]] = []
    for step in STEPS:
        body = resolve(step["action"]["body"], saga_input, results)
        client = clients[step["participant"]]
        answer = await client.post(
            step["action"]["path"], json=body, headers=key(saga, step["name"])
        )
        if answer.status_code >= 300:
            assert step["kind"] != "retriable", answer.text
            default_body = {"saga_id": saga, "input": saga_input, "results": results}
            for earlier in reversed(done):
                undo = await clients[earlier["participant"]].post(
                    earlier["compensation"]["path"],
                    json=default_body,
                    headers=key(saga, earlier["name"], "compensation"),
                )
                assert undo.status_code == 200, undo.text
            return {"status": "compensated", "failed": step["name"], "error": answer.json()}
        results[step["name"]] = answer.json()
        if "compensation" in step:
            done.append(step)
    return {"status": "completed", "results": results}


@pytest.fixture
async def clients(make_database: MakeDatabase) -> AsyncIterator[Clients]:
    async with AsyncExitStack() as stack:
        found: Clients = {}
        for name in SERVICES:
            _, app = await start(name, make_database(name))
            base = await stack.enter_async_context(serve_app(app))
            found[name] = await stack.enter_async_context(httpx.AsyncClient(base_url=base))
        yield found


async def test_the_example_input_completes(clients: Clients) -> None:
    outcome = await run_saga(clients, "happy", EXAMPLE_INPUT)

    assert outcome["status"] == "completed"
    order_id = outcome["results"]["create_order"]["order_id"]
    order = (await clients["orders"].get(f"/orders/{order_id}")).json()
    assert order["status"] == "approved"
    assert order["shipment_id"] == outcome["results"]["create_shipment"]["shipment_id"]
    item = (await clients["inventory"].get("/items/A1")).json()
    assert (item["available"], item["reserved"], item["committed"]) == (98, 0, 2)
    assert (await clients["payments"].get("/accounts/alice")).json()["balance"] == 970
    for name, client in clients.items():
        statuses = set((await ledger(client, "happy")).values())
        assert statuses == {"applied"}, name


async def test_short_stock_compensates_the_order(clients: Clients) -> None:
    saga_input = {"account": "alice", "sku": "C3", "qty": 4, "amount": 30}
    outcome = await run_saga(clients, "short", saga_input)

    assert outcome["status"] == "compensated"
    assert outcome["failed"] == "reserve_stock"
    assert outcome["error"]["error"]["code"] == "out_of_stock"
    assert await ledger(clients["orders"], "short") == {
        "short:create_order:action": "compensated",
        "short:create_order:compensation": "applied",
    }
    rejected = (await clients["orders"].get("/orders", params={"saga_id": "short"})).json()
    assert [o["status"] for o in rejected] == ["rejected"]


async def test_a_failed_pivot_compensates_every_earlier_step(clients: Clients) -> None:
    saga_input = {"account": "carol", "sku": "B2", "qty": 3, "amount": 500}
    outcome = await run_saga(clients, "broke", saga_input)

    assert outcome["failed"] == "charge"
    assert outcome["error"]["error"]["code"] == "insufficient_funds"
    item = (await clients["inventory"].get("/items/B2")).json()
    assert (item["available"], item["reserved"]) == (20, 0)
    assert (await ledger(clients["inventory"], "broke"))[
        "broke:reserve_stock:action"
    ] == "compensated"
    assert (await ledger(clients["payments"], "broke")) == {"broke:charge:action": "rejected"}
    assert (await ledger(clients["shipping"], "broke")) == {}
