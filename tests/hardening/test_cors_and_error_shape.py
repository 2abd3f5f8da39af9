"""CORS off by default and configurable; every error in the documented shape."""

from __future__ import annotations

import httpx
import pytest

from tests.hardening.helpers import KEY, assert_error
from tests.support.orchestrator import fast_settings, running_orchestrator

pytestmark = pytest.mark.postgres

ORIGIN = "https://console.example"
PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


async def test_cors_is_off_by_default(database_url: str, participant_url: str) -> None:
    settings = fast_settings(database_url, {"p": [participant_url]})
    async with running_orchestrator(settings) as api:
        response = await api.options("/v1/sagas", headers=PREFLIGHT)
        assert "access-control-allow-origin" not in response.headers
        assert_error(response, 405)
        response = await api.get("/v1/sagas", headers={"Origin": ORIGIN})
        assert response.status_code == 200
        assert "access-control-allow-origin" not in response.headers


async def test_cors_for_configured_origins(database_url: str, participant_url: str) -> None:
    settings = fast_settings(
        database_url, {"p": [participant_url]}, api_key=KEY, cors_origins=[ORIGIN]
    )
    async with running_orchestrator(settings) as api:
        allowed = await api.options("/v1/sagas", headers=PREFLIGHT)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == ORIGIN
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        refused = await api.options("/v1/sagas", headers={**PREFLIGHT, "Origin": "https://evil"})
        assert_error(refused, 400, "cors_refused")
        assert "access-control-allow-origin" not in refused.headers
        # A real request from the allowed origin still needs the key.
        response = await api.get("/v1/sagas", headers={"Origin": ORIGIN})
        assert_error(response, 401)
        assert response.headers["access-control-allow-origin"] == ORIGIN
        response = await api.get(
            "/v1/sagas", headers={"Origin": ORIGIN, "Authorization": f"Bearer {KEY}"}
        )
        assert response.status_code == 200


def test_cors_origins_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.settings import Settings

    monkeypatch.setenv("SAGA_CORS_ORIGINS", "https://a.example, https://b.example:8443/")
    assert Settings().cors_origins == ["https://a.example", "https://b.example:8443"]
    monkeypatch.setenv("SAGA_CORS_ORIGINS", '["https://c.example"]')
    assert Settings().cors_origins == ["https://c.example"]
    monkeypatch.setenv("SAGA_CORS_ORIGINS", "")
    assert Settings().cors_origins == []


async def test_framework_errors_are_mapped(database_url: str, participant_url: str) -> None:
    settings = fast_settings(database_url, {"p": [participant_url]})
    async with running_orchestrator(settings) as api:
        json_headers = {"Content-Type": "application/json"}
        cases: list[tuple[httpx.Response, int, str]] = [
            (
                await api.post("/v1/sagas", content=b"{oops", headers=json_headers),
                400,
                "invalid_json",
            ),
            (await api.post("/v1/sagas", content=b'{"definition": "d"}'), 422, "invalid_request"),
            (
                await api.post(
                    "/v1/sagas", content=b"definition=d", headers={"Content-Type": "text/plain"}
                ),
                422,
                "invalid_request",
            ),
            (await api.post("/v1/sagas", json={"definition": 7}), 422, "invalid_request"),
            (await api.get("/v1/sagas", params={"status": "weird"}), 422, "invalid_request"),
            (await api.get("/v1/nowhere"), 404, "not_found"),
            (await api.get("/nowhere"), 404, "not_found"),
            (await api.put("/v1/sagas"), 405, "method_not_allowed"),
            (await api.delete("/healthz"), 405, "method_not_allowed"),
            (await api.get("/v1/sagas/00000000-0000-0000-0000-000000000000"), 404, "not_found"),
            (
                await api.post(
                    "/v1/sagas/00000000-0000-0000-0000-000000000000/steps/a/complete",
                    json={"outcome": "succeeded"},
                ),
                403,
                "forbidden",
            ),
        ]
        for response, status, code in cases:
            assert_error(response, status, code)
        invalid = cases[3][0].json()["error"]
        assert invalid["fields"] == [
            {"field": "definition", "message": "Input should be a valid string"}
        ]
        # The document says so too: no operation documents FastAPI's own shape.
        document = (await api.get("/openapi.json")).json()
        assert "HTTPValidationError" not in document["components"]["schemas"]
        for item in document["paths"].values():
            for operation in item.values():
                for answer in operation["responses"].values():
                    schema = answer.get("content", {}).get("application/json", {}).get("schema")
                    assert schema != {"$ref": "#/components/schemas/HTTPValidationError"}
