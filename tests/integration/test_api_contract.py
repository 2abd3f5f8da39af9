"""The REST contract's behaviours: versions, idempotent starts, paging, operator requests."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.support.orchestrator import step, wait_final, wait_step
from tests.support.participant import ScriptedParticipant

pytestmark = pytest.mark.postgres


async def test_definition_versions(api: httpx.AsyncClient) -> None:
    body = {"name": "v", "steps": [step("a")]}
    first = await api.post("/v1/definitions", json=body)
    assert first.status_code == 201
    assert first.json()["version"] == 1
    again = await api.post("/v1/definitions", json=body)
    assert again.status_code == 200
    assert again.json()["version"] == 1
    changed = await api.post("/v1/definitions", json={**body, "deadline_s": 60})
    assert changed.status_code == 201
    assert changed.json()["version"] == 2
    assert (await api.get("/v1/definitions/v")).json()["version"] == 2
    assert (await api.get("/v1/definitions/v/versions/1")).json()["deadline_s"] is None
    listed = (await api.get("/v1/definitions")).json()["items"]
    assert [(d["name"], d["version"]) for d in listed] == [("v", 2)]
    saga = (await api.post("/v1/sagas", json={"definition": "v", "version": 1})).json()
    assert saga["definition_version"] == 1


async def test_idempotent_start(api: httpx.AsyncClient) -> None:
    await api.post("/v1/definitions", json={"name": "once", "steps": [step("a")]})
    headers = {"Idempotency-Key": "order-42"}
    body = {"definition": "once", "input": {"n": 1}}
    first = await api.post("/v1/sagas", json=body, headers=headers)
    second = await api.post("/v1/sagas", json=body, headers=headers)
    assert first.status_code == 201
    assert second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    other = await api.post("/v1/sagas", json={**body, "input": {"n": 2}}, headers=headers)
    assert other.status_code == 409
    page = (await api.get("/v1/sagas")).json()
    assert len(page["items"]) == 1


async def test_concurrent_idempotent_starts_create_one_saga(api: httpx.AsyncClient) -> None:
    await api.post("/v1/definitions", json={"name": "once", "steps": [step("a")]})
    headers = {"Idempotency-Key": "race"}
    answers = await asyncio.gather(
        *(api.post("/v1/sagas", json={"definition": "once"}, headers=headers) for _ in range(10))
    )
    assert sorted(a.status_code for a in answers) == [200] * 9 + [201]
    assert len({a.json()["id"] for a in answers}) == 1


async def test_cursor_paging_newest_first(api: httpx.AsyncClient) -> None:
    await api.post("/v1/definitions", json={"name": "page", "steps": [step("a")]})
    ids = [
        (await api.post("/v1/sagas", json={"definition": "page"})).json()["id"] for _ in range(7)
    ]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/v1/sagas", params=params)).json()
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    done = (await api.get("/v1/sagas", params={"definition": "page", "status": "running"})).json()
    assert all(s["status"] == "running" for s in done["items"])


async def test_cancel_compensates(api: httpx.AsyncClient, participant: ScriptedParticipant) -> None:
    participant.delay["b"] = 0.5
    await api.post(
        "/v1/definitions", json={"name": "slow", "steps": [step("a"), step("b"), step("c")]}
    )
    saga_id = (await api.post("/v1/sagas", json={"definition": "slow"})).json()["id"]
    await asyncio.sleep(0.2)  # b is in flight
    response = await api.post(f"/v1/sagas/{saga_id}/cancel")
    assert response.status_code == 200, response.text
    saga = await wait_final(api, saga_id)
    assert saga["status"] == "compensated"
    assert [s["status"] for s in saga["steps"]] == ["compensated", "compensated", "pending"]
    assert participant.order[-2:] == ["compensation:b", "compensation:a"]


async def test_cancel_after_pivot_is_refused(
    api: httpx.AsyncClient, participant: ScriptedParticipant
) -> None:
    # c is slow, so the saga stays running past its pivot long enough to be asked.
    participant.delay["c"] = 1.5
    steps = [
        step("a"),
        {**step("b"), "kind": "pivot", "compensation": None},
        {**step("c"), "kind": "retriable", "compensation": None, "timeout_ms": 5000},
    ]
    await api.post("/v1/definitions", json={"name": "piv", "steps": steps})
    saga_id = (await api.post("/v1/sagas", json={"definition": "piv"})).json()["id"]
    await wait_step(api, saga_id, 1, "succeeded")
    response = await api.post(f"/v1/sagas/{saga_id}/cancel")
    assert response.status_code == 409
    assert "pivot" in response.json()["error"]["message"]
    assert (await wait_final(api, saga_id))["status"] == "completed"


async def test_park_then_retry_forward(
    api: httpx.AsyncClient, participant: ScriptedParticipant
) -> None:
    participant.steady["b"] = 409
    await api.post(
        "/v1/definitions",
        json={"name": "parks", "on_failure": "park", "steps": [step("a"), step("b")]},
    )
    saga_id = (await api.post("/v1/sagas", json={"definition": "parks"})).json()["id"]
    saga = await wait_final(api, saga_id)
    assert saga["status"] == "failed"
    assert saga["error"]["step"] == "b"
    participant.steady["b"] = 200
    participant.answers.clear()  # the operator fixed the cause at the participant
    retried = await api.post("/v1/sagas/retry", json={"status": "failed", "step": "b"})
    assert retried.json() == {"retried": 1}
    assert (await wait_final(api, saga_id))["status"] == "completed"


async def test_compensate_a_parked_saga(
    api: httpx.AsyncClient, participant: ScriptedParticipant
) -> None:
    participant.steady["b"] = 409
    await api.post(
        "/v1/definitions",
        json={"name": "parks", "on_failure": "park", "steps": [step("a"), step("b")]},
    )
    saga_id = (await api.post("/v1/sagas", json={"definition": "parks"})).json()["id"]
    await wait_final(api, saga_id)
    assert (await api.post(f"/v1/sagas/{saga_id}/compensate")).status_code == 200
    saga = await wait_final(api, saga_id)
    assert saga["status"] == "compensated"
    assert saga["steps"][0]["status"] == "compensated"


async def test_ops_endpoints(api: httpx.AsyncClient, participant_url: str) -> None:
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    assert (await api.get("/readyz")).status_code == 200
    metrics = await api.get("/metrics")
    assert metrics.status_code == 200
    assert "saga_started" in metrics.text
    participants = (await api.get("/v1/participants")).json()["items"]
    assert participants == [
        {
            "name": "p",
            "base_urls": [participant_url],
            "urls": [{"url": participant_url, "health": "up"}],
            "health": "up",
        }
    ]


async def test_parked_after_an_outage_retried_once_fixed_applies_once(
    api: httpx.AsyncClient, participant: ScriptedParticipant
) -> None:
    """The participant is down (503) until fixed: b parks; a retry completes it, applied once."""
    participant.steady["b"] = 503
    await api.post(
        "/v1/definitions",
        json={"name": "outage", "on_failure": "park", "steps": [step("a"), step("b"), step("c")]},
    )
    saga_id = (await api.post("/v1/sagas", json={"definition": "outage"})).json()["id"]
    saga = await wait_final(api, saga_id)
    assert saga["status"] == "failed"
    assert saga["steps"][1]["status"] == "failed"
    assert saga["steps"][1]["attempts"] == 3

    participant.steady["b"] = 200  # fixed; nothing stored for b's key, so the retry applies it
    assert (await api.post(f"/v1/sagas/{saga_id}/retry")).status_code == 200
    saga = await wait_final(api, saga_id)
    assert saga["status"] == "completed"
    assert saga["steps"][1]["attempts"] == 4
    b_key = f"{saga_id}:b:action"
    assert participant.applied[b_key] == 1
    assert {r["key"] for r in participant.requests if r["step"] == "b"} == {b_key}
