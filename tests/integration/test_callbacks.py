"""Callback steps over real HTTP: 202 now, completion later, bounded by the step's timeout."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.integration.test_saga_flow import register, start
from tests.support.orchestrator import step, wait_final
from tests.support.participant import ScriptedParticipant

pytestmark = pytest.mark.postgres


def callback_step(name: str, timeout_ms: int = 5000) -> dict[str, object]:
    return step(name, completion="callback", timeout_ms=timeout_ms)


async def test_completed_two_seconds_later(
    api: httpx.AsyncClient, participant: ScriptedParticipant
) -> None:
    participant.callbacks["b"] = (2.0, "succeeded")
    await register(api, "cb", [step("a"), callback_step("b"), step("c")])
    saga_id = await start(api, "cb")
    await asyncio.sleep(1.0)
    waiting = (await api.get(f"/v1/sagas/{saga_id}")).json()
    assert waiting["status"] == "running"
    assert waiting["steps"][1]["status"] == "running"
    saga = await wait_final(api, saga_id)
    assert saga["status"] == "completed"
    assert saga["results"]["b"] == {"completed": True}
    assert participant.order == ["action:a", "accepted:b", "completed:b", "action:c"]
    assert participant.callback_answers == [200]
    url, _ = participant.callback_requests["b"]
    assert url.endswith(f"/v1/sagas/{saga_id}/steps/b/complete")


async def test_no_callback_compensates_at_the_timeout(
    api: httpx.AsyncClient, participant: ScriptedParticipant
) -> None:
    participant.callbacks["b"] = None
    await register(api, "cb", [step("a"), callback_step("b", timeout_ms=800), step("c")])
    saga = await wait_final(api, await start(api, "cb"))
    assert saga["status"] == "compensated"
    assert saga["steps"][1]["status"] == "compensated"  # outcome unknown: compensated too
    assert "timeout" in saga["error"]["message"]
    assert participant.order[-2:] == ["compensation:b", "compensation:a"]


async def test_tokens_duplicates_and_late_completions(
    api: httpx.AsyncClient, participant: ScriptedParticipant
) -> None:
    participant.callbacks["b"] = None
    await register(api, "cb", [callback_step("b", timeout_ms=1500)])
    saga_id = await start(api, "cb")
    while "b" not in participant.callback_requests:
        await asyncio.sleep(0.05)
    url, token = participant.callback_requests["b"]
    path = url.split("://", 1)[1].split("/", 1)[1]
    done = {"outcome": "succeeded", "result": {"n": 1}}

    wrong = await api.post(f"/{path}", json=done, headers={"X-Saga-Callback-Token": "0" * 64})
    assert wrong.status_code == 403
    assert wrong.json()["error"]["code"] == "forbidden"
    assert (await api.post(f"/{path}", json=done)).status_code == 403

    first = await api.post(f"/{path}", json=done, headers={"X-Saga-Callback-Token": token})
    assert first.status_code == 200, first.text
    version = first.json()["version"]
    again = await api.post(f"/{path}", json=done, headers={"X-Saga-Callback-Token": token})
    assert again.status_code == 200
    assert again.json()["version"] == version  # changed nothing
    saga = await wait_final(api, saga_id)
    assert saga["status"] == "completed"

    # A second saga whose completion comes after the timeout: 409, and recorded.
    late_id = await start(api, "cb")
    while participant.callback_requests["b"][0] == url:
        await asyncio.sleep(0.05)
    late_url, late_token = participant.callback_requests["b"]
    assert (await wait_final(api, late_id))["status"] == "compensated"
    late_path = late_url.split("://", 1)[1].split("/", 1)[1]
    late = await api.post(f"/{late_path}", json=done, headers={"X-Saga-Callback-Token": late_token})
    assert late.status_code == 409
    history = (await api.get(f"/v1/sagas/{late_id}/events")).json()["items"]
    assert any(e["kind"] == "callback" and e["outcome"] == "refused" for e in history)
