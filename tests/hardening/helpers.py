"""Helpers shared by the hardening tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from orchestrator.api.app import create_app
from orchestrator.api.server import server_options
from orchestrator.settings import Settings
from tests.support.servers import free_port, serve_app

KEY = "hardening-key-0123456789abcdef"
OLD_KEY = "hardening-old-key-fedcba9876543210"


def assert_error(
    response: httpx.Response, status: int, code: str | None = None, field: str | None = None
) -> dict[str, Any]:
    """``response`` is ``status`` in the documented error shape; returns the error object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) >= {"error"}, body
    assert "detail" not in body, body
    error: dict[str, Any] = body["error"]
    assert isinstance(error["code"], str), error
    assert error["code"], error
    assert isinstance(error["message"], str), error
    assert error["message"], error
    if code is not None:
        assert error["code"] == code, error
    if field is not None:
        assert field in [f["field"] for f in error.get("fields", [])], error
    if status == 503:
        assert response.headers["retry-after"].isdigit()
    return error


@asynccontextmanager
async def serve_like_production(
    settings: Settings, role: str = "all"
) -> AsyncIterator[tuple[str, Any]]:
    """The orchestrator under uvicorn with the options ``saga serve`` uses; yields (URL, app)."""
    port = free_port()
    if settings.public_url is None:
        settings = settings.model_copy(update={"public_url": f"http://127.0.0.1:{port}"})
    app = create_app(settings, role=role)
    async with serve_app(app, port, **server_options(settings)) as url:
        yield url, app


async def register(
    client: httpx.AsyncClient, name: str, steps: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    response = await client.post("/v1/definitions", json={"name": name, "steps": steps, **extra})
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


async def start(
    client: httpx.AsyncClient, name: str, saga_input: dict[str, Any] | None = None
) -> str:
    response = await client.post("/v1/sagas", json={"definition": name, "input": saga_input or {}})
    assert response.status_code == 201, response.text
    saga_id: str = response.json()["id"]
    return saga_id
