"""Bad input is a 4xx in the documented error shape, never a 5xx."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.orchestrator import step

pytestmark = pytest.mark.postgres


def assert_error(response: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"]
    assert error["message"]
    if field is not None:
        assert field in [f["field"] for f in error.get("fields", [])], error
    return error


async def test_malformed_json(api: httpx.AsyncClient) -> None:
    headers = {"Content-Type": "application/json"}
    for path in ("/v1/definitions", "/v1/sagas", "/v1/faults"):
        response = await api.post(path, content=b'{"name": "x",', headers=headers)
        assert_error(response, 400)


async def test_unknown_definition(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/sagas", json={"definition": "nope", "input": {}})
    assert_error(response, 404)
    assert_error(await api.get("/v1/definitions/nope"), 404)
    assert_error(await api.get("/v1/definitions/nope/versions/3"), 404)


async def test_unknown_participant(api: httpx.AsyncClient) -> None:
    body = {"name": "d", "steps": [step("a", participant="nobody")]}
    error = assert_error(await api.post("/v1/definitions", json=body), 422, "steps.0.participant")
    assert "nobody" in str(error)


async def test_template_reference_to_later_step(api: httpx.AsyncClient) -> None:
    first = step("a")
    first["action"]["body"] = {"x": "$.results.b.id"}
    body = {"name": "d", "steps": [first, step("b")]}
    assert_error(await api.post("/v1/definitions", json=body), 422, "steps.0.action.body")


@pytest.mark.parametrize(
    ("definition", "field"),
    [
        ({"name": "d", "steps": []}, "steps"),
        ({"name": "bad name!", "steps": [step("a")]}, "name"),
        ({"name": "d", "steps": [{**step("a"), "compensation": None}]}, "steps.0.compensation"),
        ({"name": "d", "steps": [step("a"), step("a")]}, "steps.1.name"),
        (
            {"name": "d", "steps": [{**step("a"), "kind": "retriable", "compensation": None}]},
            "steps.0.kind",
        ),
        (
            {"name": "d", "steps": [{**step("a"), "action": {"path": "http://evil.example/x"}}]},
            "steps.0.action.path",
        ),
        (
            {"name": "d", "steps": [{**step("a"), "action": {"path": "/a/../b"}}]},
            "steps.0.action.path",
        ),
        (
            {"name": "d", "steps": [{**step("a"), "retry": {"max_attempts": 0}}]},
            "steps.0.retry.max_attempts",
        ),
        ({"name": "d", "steps": [step("a")], "on_failure": "explode"}, "on_failure"),
    ],
)
async def test_invalid_definitions_name_the_field(
    api: httpx.AsyncClient, definition: dict[str, Any], field: str
) -> None:
    assert_error(await api.post("/v1/definitions", json=definition), 422, field)


async def test_missing_input_is_named(api: httpx.AsyncClient) -> None:
    a = step("a")
    a["action"]["body"] = {"sku": "$.input.sku"}
    assert (
        await api.post("/v1/definitions", json={"name": "needs", "steps": [a]})
    ).status_code == 201
    response = await api.post("/v1/sagas", json={"definition": "needs", "input": {}})
    assert_error(response, 422, "input.sku")


async def test_oversized_payload(api: httpx.AsyncClient) -> None:
    big = {"definition": "x", "input": {"blob": "x" * 2_000_000}}
    assert_error(await api.post("/v1/sagas", json=big), 413)


async def test_unknown_saga(api: httpx.AsyncClient) -> None:
    for path in (
        "/v1/sagas/3f2d0c52-8a0e-4c55-9d35-6f8f1f6f0a11",
        "/v1/sagas/not-a-uuid",
        "/v1/sagas/3f2d0c52-8a0e-4c55-9d35-6f8f1f6f0a11/events",
    ):
        assert_error(await api.get(path), 404)
    for action in ("cancel", "retry", "compensate"):
        response = await api.post(f"/v1/sagas/3f2d0c52-8a0e-4c55-9d35-6f8f1f6f0a11/{action}")
        assert_error(response, 404)


async def test_bad_query_and_bodies(api: httpx.AsyncClient) -> None:
    assert_error(await api.get("/v1/sagas", params={"status": "weird"}), 422, "status")
    assert_error(await api.get("/v1/sagas", params={"limit": 0}), 422, "limit")
    assert_error(await api.get("/v1/sagas", params={"cursor": "garbage"}), 422, "cursor")
    assert_error(await api.post("/v1/sagas", json={"input": {}}), 422, "definition")
    assert_error(await api.post("/v1/sagas", json=[1, 2]), 422)
    assert_error(await api.post("/v1/faults", json={"mode": "explode"}), 422, "mode")
    assert_error(await api.delete("/v1/faults/999"), 404)
    assert_error(await api.get("/v1/nothing-here"), 404)


async def test_refused_requests_say_why(api: httpx.AsyncClient) -> None:
    assert (
        await api.post("/v1/definitions", json={"name": "one", "steps": [step("a")]})
    ).status_code == 201
    saga = (await api.post("/v1/sagas", json={"definition": "one"})).json()
    from tests.support.orchestrator import wait_final

    await wait_final(api, saga["id"])
    error = assert_error(await api.post(f"/v1/sagas/{saga['id']}/cancel"), 409)
    assert "completed" in error["message"]
    assert_error(await api.post(f"/v1/sagas/{saga['id']}/retry"), 409)
