"""Sagas end to end over real HTTP against real PostgreSQL (issue: must show 1)."""

from __future__ import annotations

import httpx
import pytest

from tests.support.orchestrator import step, wait_final
from tests.support.participant import ScriptedParticipant

pytestmark = pytest.mark.postgres


async def register(api: httpx.AsyncClient, name: str, steps: list[dict], **extra: object) -> None:
    response = await api.post("/v1/definitions", json={"name": name, "steps": steps, **extra})
    assert response.status_code == 201, response.text


async def start(api: httpx.AsyncClient, name: str, saga_input: dict | None = None) -> str:
    response = await api.post("/v1/sagas", json={"definition": name, "input": saga_input or {}})
    assert response.status_code == 201, response.text
    saga_id: str = response.json()["id"]
    return saga_id


async def test_three_steps_complete(
    api: httpx.AsyncClient, participant: ScriptedParticipant
) -> None:
    await register(api, "three", [step("a"), step("b"), step("c")])
    saga = await wait_final(api, await start(api, "three", {"x": 1}))
    assert saga["status"] == "completed"
    assert [s["status"] for s in saga["steps"]] == ["succeeded"] * 3
    assert set(saga["results"]) == {"a", "b", "c"}
    assert participant.order == ["action:a", "action:b", "action:c"]
    assert all(n == 1 for n in participant.applied.values())
    assert len(participant.applied) == 3


async def test_rejection_compensates_in_reverse(
    api: httpx.AsyncClient, participant: ScriptedParticipant
) -> None:
    participant.steady["c"] = 409
    await register(api, "rejects", [step("a"), step("b"), step("c")])
    saga = await wait_final(api, await start(api, "rejects"))
    assert saga["status"] == "compensated"
    assert [s["status"] for s in saga["steps"]] == ["compensated", "compensated", "rejected"]
    assert participant.order == [
        "action:a",
        "action:b",
        "compensation:b",
        "compensation:a",
    ]
    assert saga["error"]["step"] == "c"


async def test_failing_compensation_parks_then_retry_finishes(
    api: httpx.AsyncClient, participant: ScriptedParticipant
) -> None:
    participant.steady["c"] = 409
    participant.steady["a:compensation"] = 503
    await register(api, "stuck", [step("a"), step("b"), step("c")])
    saga_id = await start(api, "stuck")
    saga = await wait_final(api, saga_id)
    assert saga["status"] == "failed"
    assert saga["error"]["step"] == "a"
    assert saga["error"]["phase"] == "compensation"
    assert saga["steps"][0]["status"] == "compensation_failed"
    assert saga["steps"][0]["compensation_attempts"] == 3

    participant.steady["a:compensation"] = 200  # the participant is fixed
    response = await api.post(f"/v1/sagas/{saga_id}/retry")
    assert response.status_code == 200, response.text
    saga = await wait_final(api, saga_id)
    assert saga["status"] == "compensated"
    assert participant.order[-1] == "compensation:a"
    history = (await api.get(f"/v1/sagas/{saga_id}/events")).json()["items"]
    assert any(e["kind"] == "operator" and e["detail"]["action"] == "retry" for e in history)


async def test_transient_failures_are_retried_with_the_same_key(
    api: httpx.AsyncClient, participant: ScriptedParticipant
) -> None:
    participant.script["b"] = [503, 502]
    await register(api, "flaky", [step("a"), step("b")])
    saga = await wait_final(api, await start(api, "flaky"))
    assert saga["status"] == "completed"
    assert saga["steps"][1]["attempts"] == 3
    b_requests = [r for r in participant.requests if r["step"] == "b"]
    assert len({r["key"] for r in b_requests}) == 1
    assert [r["attempt"] for r in b_requests] == ["1", "2", "3"]


async def test_parallel_group_member_rejects(
    api: httpx.AsyncClient, participant: ScriptedParticipant
) -> None:
    participant.steady["y"] = 409
    participant.delay["z"] = 0.2  # still running when y rejects: awaited, then compensated
    await register(
        api, "fan", [step("a"), {"parallel": [step("x"), step("y"), step("z")]}, step("b")]
    )
    saga = await wait_final(api, await start(api, "fan"))
    assert saga["status"] == "compensated"
    statuses = {s["name"]: s["status"] for s in saga["steps"]}
    assert statuses == {
        "a": "compensated",
        "x": "compensated",
        "y": "rejected",
        "z": "compensated",
        "b": "pending",
    }
    order = participant.order
    assert order[0] == "action:a"
    assert set(order[1:3]) == {"action:x", "action:z"}
    assert set(order[3:5]) == {"compensation:x", "compensation:z"}
    assert order[5:] == ["compensation:a"]


async def test_parallel_group_results_feed_later_steps(
    api: httpx.AsyncClient, participant: ScriptedParticipant
) -> None:
    last = step(
        "b",
        action={
            "path": "/do/b",
            "body": {"from_x": "$.results.x.id", "from_y": "$.results.y.step"},
        },
    )
    await register(api, "join", [{"parallel": [step("x"), step("y")]}, last])
    saga = await wait_final(api, await start(api, "join"))
    assert saga["status"] == "completed"
    b_body = next(r["body"] for r in participant.requests if r["step"] == "b")
    assert b_body["from_y"] == "y"
    assert b_body["from_x"].startswith("x-")
