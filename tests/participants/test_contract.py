"""Every example action/compensation pair passes the kit's own contract check."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from participants.kit.contract import ContractViolation, check_participant
from tests.participants.conftest import MakeDatabase, start
from tests.support.servers import serve_app

PAIRS: list[tuple[str, str, dict[str, Any], str]] = [
    ("orders", "/orders", {"account": "bob", "sku": "A1", "qty": 1, "amount": 5}, "/orders/reject"),
    ("payments", "/charges", {"account": "bob", "amount": 5}, "/charges/refund"),
    ("inventory", "/reservations", {"sku": "A1", "qty": 1}, "/reservations/cancel"),
    ("shipping", "/shipments", {"order_id": "o1", "sku": "A1", "qty": 1}, "/shipments/cancel"),
]


@pytest.mark.parametrize(("service", "action", "body", "compensation"), PAIRS)
async def test_the_examples_honour_the_protocol(
    make_database: MakeDatabase, service: str, action: str, body: dict[str, Any], compensation: str
) -> None:
    _, app = await start(service, make_database(service))
    async with serve_app(app) as base, httpx.AsyncClient(base_url=base) as client:
        await check_participant(client, action, body, compensation=compensation)


def careless_app() -> FastAPI:
    """A service that ignores Idempotency-Key: every call is a new effect."""
    app = FastAPI()

    @app.post("/things", status_code=201)
    async def create_thing() -> dict[str, str]:
        return {"thing_id": uuid.uuid4().hex}

    return app


async def test_the_check_catches_a_service_that_ignores_the_key() -> None:
    async with serve_app(careless_app()) as base, httpx.AsyncClient(base_url=base) as client:
        with pytest.raises(ContractViolation, match="repeated key should get the first answer"):
            await check_participant(client, "/things", {"name": "x"})
