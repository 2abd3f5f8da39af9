"""Limits: each oversized or hostile input is a clear 413/422 (or 400), never a 5xx or a crash."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse

from tests.hardening.helpers import assert_error, register, start
from tests.support.orchestrator import fast_settings, running_orchestrator, step, wait_final
from tests.support.servers import serve_app

pytestmark = pytest.mark.postgres

MAX_INPUT = 8192
MAX_RESPONSE = 65_536
JSON = {"Content-Type": "application/json"}


def misbehaving_participant() -> FastAPI:
    """Answers 200 with more than the response limit, or 200 with HTML."""
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/big")
    async def big() -> JSONResponse:
        return JSONResponse({"blob": "x" * (MAX_RESPONSE * 2)})

    @app.post("/html")
    async def html() -> HTMLResponse:
        return HTMLResponse("<html><body>Welcome to nginx!</body></html>")

    @app.post("/undo")
    async def undo() -> dict[str, bool]:
        return {"undone": True}

    return app


@pytest.fixture
async def api(database_url: str, participant_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_app(misbehaving_participant()) as odd_url:
        settings = fast_settings(
            database_url,
            {"p": [participant_url], "odd": [odd_url]},
            max_body_bytes=256 * 1024,
            max_input_bytes=MAX_INPUT,
            max_response_bytes=MAX_RESPONSE,
        )
        async with running_orchestrator(settings) as client:
            yield client


async def test_request_body_size(api: httpx.AsyncClient) -> None:
    big = {"definition": "d", "input": {"x": "y" * 300_000}}
    assert_error(await api.post("/v1/sagas", json=big), 413, "payload_too_large")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        yield b'{"definition": "d", "input": {"x": "'
        for _ in range(40):
            yield b"y" * 8192
        yield b'"}}'

    response = await api.post("/v1/sagas", content=chunks(), headers=JSON)
    assert_error(response, 413, "payload_too_large")
    assert (await api.get("/healthz")).status_code == 200


async def test_definition_size(api: httpx.AsyncClient) -> None:
    many = [step(f"s{i}") for i in range(101)]
    response = await api.post("/v1/definitions", json={"name": "d", "steps": many})
    assert_error(response, 422, field="steps")
    long_name = "n" * 65
    response = await api.post("/v1/definitions", json={"name": long_name, "steps": [step("a")]})
    assert_error(response, 422, field="name")
    response = await api.post("/v1/definitions", json={"name": "d", "steps": [step(long_name)]})
    assert_error(response, 422, field="steps.0.name")
    group = {"parallel": [step(f"p{i}") for i in range(21)]}
    response = await api.post("/v1/definitions", json={"name": "d", "steps": [group]})
    assert_error(response, 422, field="steps.0.parallel")
    body: Any = "$.input.x"
    for _ in range(11):
        body = {"k": body}
    deep = step("a", action={"path": "/do/a", "body": body})
    response = await api.post("/v1/definitions", json={"name": "d", "steps": [deep]})
    assert_error(response, 422, field="steps.0.action.body")
    # The limits themselves are allowed.
    await register(api, "max", [step(f"s{i}") for i in range(100)])


async def test_input_size(api: httpx.AsyncClient) -> None:
    await register(api, "d", [step("a")])
    response = await api.post(
        "/v1/sagas", json={"definition": "d", "input": {"x": "y" * MAX_INPUT}}
    )
    error = assert_error(response, 413, "payload_too_large", field="input")
    assert "SAGA_MAX_INPUT_BYTES" in error["message"]
    ok = await api.post("/v1/sagas", json={"definition": "d", "input": {"x": "y" * 1000}})
    assert ok.status_code == 201


async def test_hostile_json(api: httpx.AsyncClient) -> None:
    await register(api, "d", [step("a")])
    cases: list[tuple[bytes, int, str | None]] = [
        (b'{"definition": "d", "input": {"x": NaN}}', 422, None),
        (b'{"definition": "d", "input": {"x": Infinity}}', 422, None),
        (b'{"definition": "d", "input": {"x": -Infinity}}', 422, None),
        (b'{"definition": "d", "input": {"x": 1e999}}', 422, None),
        (b'{"definition": "d", "input": {"x": "a\\u0000b"}}', 422, "input.x"),
        (b'{"definition": "d", "input": {"a\\u0000": 1}}', 422, "input.a\x00"),
        (b'{"definition": "d", "input": {"x": "\\ud800"}}', 422, "input.x"),
        (b'{"definition": "d", "input": {"x": ' + b"9" * 5000 + b"}}", 400, None),
        (b'{"definition": "d", "input": {"x": "\xff\xfe"}}', 400, None),
        (b'{"definition": "d", "input": ' + b"[" * 40 + b"]" * 40 + b"}", 422, None),
        (b"[" * 100_000 + b"]" * 100_000, 422, None),
        (b'{"definition": "d", "input": {"x": 1}', 400, None),
        (b"", 422, None),
    ]
    for body, status, field in cases:
        response = await api.post("/v1/sagas", content=body, headers=JSON)
        assert_error(response, status, field=field)
    # Deep but within SAGA_MAX_JSON_DEPTH (32): accepted.
    nested: Any = 1
    for _ in range(20):
        nested = [nested]
    ok = await api.post("/v1/sagas", json={"definition": "d", "input": {"x": nested}})
    assert ok.status_code == 201, ok.text
    # The same checks guard every JSON body, e.g. a definition's templates.
    response = await api.post(
        "/v1/definitions",
        content=json.dumps(
            {"name": "z", "steps": [step("a", action={"path": "/x", "body": {"v": "\x00"}})]}
        ),
        headers=JSON,
    )
    assert_error(response, 422)


async def test_hostile_urls_and_numbers(api: httpx.AsyncClient) -> None:
    assert_error(await api.get("/v1/sagas", params={"definition": "a\x00"}), 422)
    assert_error(await api.get("/v1/sagas", params={"cursor": "\x00"}), 422)
    assert_error(await api.get("/v1/sagas", params={"cursor": "bm90LWEtY3Vyc29y"}), 422)
    assert_error(await api.get("/v1/definitions/a%00b"), 422)
    assert_error(await api.get("/v1/definitions/" + "n" * 300), 404)
    assert_error(await api.get(f"/v1/definitions/d/versions/{2**40}"), 422)
    response = await api.post("/v1/sagas", json={"definition": "d", "version": 2**63})
    assert_error(response, 422, field="version")
    assert_error(await api.get("/v1/sagas/not-a-uuid"), 404)
    assert_error(await api.post("/v1/sagas/%00/cancel"), 422)


async def test_page_size(api: httpx.AsyncClient) -> None:
    for limit in (0, 501, -1, 10**20):
        assert_error(await api.get("/v1/sagas", params={"limit": limit}), 422, field="limit")
    assert (await api.get("/v1/sagas", params={"limit": 500})).status_code == 200


async def test_participant_answers_over_the_limit_or_not_json(api: httpx.AsyncClient) -> None:
    retry = {"max_attempts": 2, "initial_backoff_ms": 10, "max_backoff_ms": 20}
    for path, expected in (("/big", f"larger than {MAX_RESPONSE} bytes"), ("/html", "not JSON")):
        name = path.strip("/")
        definition = step(
            name,
            participant="odd",
            action={"path": path},
            compensation={"path": "/undo"},
            retry=retry,
        )
        await register(api, name, [definition])
        saga = await wait_final(api, await start(api, name))
        # A transient failure, retried, then compensated like any unknown outcome.
        assert saga["status"] == "compensated", saga
        assert saga["steps"][0]["attempts"] == 2
        assert expected in saga["steps"][0]["last_error"], saga["steps"][0]
        events = (await api.get(f"/v1/sagas/{saga['id']}/events")).json()["items"]
        calls = [e for e in events if e["kind"] == "call" and e["phase"] == "action"]
        assert [c["outcome"] for c in calls] == ["transient", "transient"]
        assert all(expected in c["detail"]["error"] for c in calls)
    assert (await api.get("/readyz")).status_code == 200  # the orchestrator is unharmed
