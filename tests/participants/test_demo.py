"""Demo data: seeding is idempotent and ``POST /_reset`` restores the seed."""

from __future__ import annotations

import httpx

from participants.registry import SERVICES
from tests.participants.conftest import MakeDatabase, start
from tests.participants.helpers import key
from tests.support.servers import serve_app


async def test_seeding_twice_changes_nothing_and_reset_restores_the_seed(
    make_database: MakeDatabase,
) -> None:
    url = make_database("payments")
    await SERVICES["payments"].seed(url)
    _, app = await start("payments", url)  # seeds a second time
    async with serve_app(app) as base, httpx.AsyncClient(base_url=base) as payments:
        seeded = (await payments.get("/accounts")).json()
        assert [(a["id"], a["balance"]) for a in seeded] == [
            ("alice", 1000),
            ("bob", 500),
            ("carol", 100),
        ]
        assert len((await payments.get("/movements")).json()) == 3
        await payments.post(
            "/charges", json={"account": "bob", "amount": 5}, headers=key("s1", "pay")
        )

        assert (await payments.post("/_reset")).json() == {"reset": True}

        assert (await payments.get("/accounts")).json()[1]["balance"] == 500
        assert len((await payments.get("/movements")).json()) == 3
        assert (await payments.get("/_ledger")).json() == []


async def test_every_service_seeds_and_resets(make_database: MakeDatabase) -> None:
    for name in SERVICES:
        _, app = await start(name, make_database(name))
        async with serve_app(app) as base, httpx.AsyncClient(base_url=base) as client:
            assert (await client.post("/_reset")).status_code == 200
            assert (await client.get("/readyz")).status_code == 200
