"""What the UI tests do through the API to set a scene."""

from __future__ import annotations

import httpx

from tests.support.orchestrator import step


async def register(api: httpx.AsyncClient, name: str, steps: list[dict], **extra: object) -> None:
    response = await api.post("/v1/definitions", json={"name": name, "steps": steps, **extra})
    assert response.status_code == 201, response.text


async def start(api: httpx.AsyncClient, name: str, saga_input: dict | None = None) -> str:
    response = await api.post("/v1/sagas", json={"definition": name, "input": saga_input or {}})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def without_undo(name: str, kind: str = "retriable") -> dict:
    """A pivot or retriable step (neither has a compensation)."""
    made = step(name, kind=kind)
    del made["compensation"]
    return made
