"""The kit's own endpoints and error shape: health, readiness, metrics, JSON errors."""

from __future__ import annotations

from pathlib import Path

import httpx
import prometheus_client

from tests.participants.conftest import MakeDatabase, start
from tests.participants.helpers import key, metric
from tests.support.servers import serve_app


async def test_health_and_readiness(payments: httpx.AsyncClient) -> None:
    assert (await payments.get("/healthz")).json() == {"status": "ok", "service": "payments"}
    assert (await payments.get("/readyz")).json() == {"status": "ready", "service": "payments"}


async def test_readiness_fails_on_an_unmigrated_database(tmp_path: Path) -> None:
    _, app = await start("shipping", f"sqlite:///{tmp_path}/empty.db", seed=False)
    async with serve_app(app) as base, httpx.AsyncClient(base_url=base) as client:
        answer = await client.get("/readyz")
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "migrations_pending"
        assert (await client.get("/healthz")).status_code == 200


async def test_every_error_is_json_with_a_snake_case_code(payments: httpx.AsyncClient) -> None:
    missing = await payments.get("/nowhere")
    wrong_method = await payments.delete("/charges")
    not_json = await payments.post(
        "/charges/refund", content=b"{oops", headers=key("s1", "pay", "compensation")
    )
    no_account = await payments.get("/accounts/nobody")

    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    assert (wrong_method.status_code, wrong_method.json()["error"]["code"]) == (
        405,
        "method_not_allowed",
    )
    assert (not_json.status_code, not_json.json()["error"]["code"]) == (422, "invalid_json")
    assert no_account.json() == {
        "error": {"code": "account_not_found", "message": "no account 'nobody'"}
    }


async def test_metrics_are_per_app_and_count_requests(make_database: MakeDatabase) -> None:
    _, first = await start("payments", make_database("payments"))
    _, second = await start("payments", make_database("payments"))
    async with (
        serve_app(first) as one,
        serve_app(second) as two,
        httpx.AsyncClient(base_url=one) as a,
        httpx.AsyncClient(base_url=two) as b,
    ):
        body = {"account": "bob", "amount": 5}
        await a.post("/charges", json=body, headers=key("s1", "pay"))
        await a.post("/charges", json=body, headers=key("s1", "pay"))

        assert await metric(a, "participant_http_requests_total", route="/charges") == 2
        assert await metric(a, "participant_effects_total", outcome="applied") == 1
        assert await metric(a, "participant_effects_total", outcome="replayed") == 1
        assert await metric(b, "participant_http_requests_total", route="/charges") == 0
        response = await a.get("/metrics")
        assert response.headers["content-type"].startswith("text/plain")
    names = {m.name for m in prometheus_client.REGISTRY.collect()}
    assert not any(name.startswith("participant_") for name in names)


async def test_openapi_documents_the_effect_bodies(payments: httpx.AsyncClient) -> None:
    schema = (await payments.get("/openapi.json")).json()
    charge = schema["paths"]["/charges"]["post"]
    ref = charge["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/ChargeRequest")
    assert {"201", "409", "503"} <= set(charge["responses"])
