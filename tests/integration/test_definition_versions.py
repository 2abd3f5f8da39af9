"""A start without a version runs the newest definition, whichever replica registered it.

Each process remembers the newest version it has seen, so a start reads no
definition from the database; the insert itself checks that no newer version
exists. These tests register a new version through one replica and start
through another that still remembers the old one.
"""

from __future__ import annotations

import httpx

from tests.support.orchestrator import fast_settings, running_orchestrator, step, wait_final
from tests.support.participant import ScriptedParticipant


async def _register(api: httpx.AsyncClient, steps: list[dict[str, object]]) -> int:
    response = await api.post("/v1/definitions", json={"name": "versioned", "steps": steps})
    assert response.status_code == 201, response.text
    version: int = response.json()["version"]
    return version


async def _start(api: httpx.AsyncClient, **body: object) -> dict[str, object]:
    response = await api.post("/v1/sagas", json={"definition": "versioned", **body})
    assert response.status_code == 201, response.text
    saga: dict[str, object] = response.json()
    return saga


async def test_a_version_registered_elsewhere_is_used_at_once(
    api: httpx.AsyncClient,
    database_url: str,
    participant_url: str,
    participant: ScriptedParticipant,
) -> None:
    assert await _register(api, [step("a")]) == 1
    first = await _start(api)
    assert first["definition_version"] == 1  # ``api`` now remembers version 1

    settings = fast_settings(database_url, {"p": [participant_url]})
    async with running_orchestrator(settings) as other:
        assert await _register(other, [step("a"), step("b")]) == 2

    second = await _start(api)
    assert second["definition_version"] == 2
    pinned = await _start(api, version=1)
    assert pinned["definition_version"] == 1
    third = await _start(api)
    assert third["definition_version"] == 2

    finals = [await wait_final(api, str(s["id"])) for s in (first, second, pinned, third)]
    assert [f["status"] for f in finals] == ["completed"] * 4
    assert [len(f["steps"]) for f in finals] == [1, 2, 1, 2]
