"""The UI's pages and actions over real HTTP, on PostgreSQL and SQLite (no browser here).

What a browser adds (the script's in-place updates, the cookie jar's
SameSite rules) is in ``tests/ui/test_browser.py``.
"""

from __future__ import annotations

import re

import httpx
import pytest

from orchestrator.api.ui.security import CSRF_COOKIE
from tests.support.orchestrator import (
    fast_settings,
    running_orchestrator,
    step,
    wait_final,
)
from tests.support.participant import ScriptedParticipant
from tests.ui.helpers import register, start, without_undo

pytestmark = pytest.mark.postgres

MALICIOUS = '<script>alert("owned")</script>'


def token_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert found, page.text[:500]
    return found.group(1)


async def test_the_list_shows_sagas_newest_first_and_filters_by_status(
    api: httpx.AsyncClient, participant: ScriptedParticipant
) -> None:
    participant.steady["b"] = 409
    await register(api, "two", [step("a"), step("b")])
    await register(api, "one", [step("a")])
    rejected = await start(api, "two")
    done = await start(api, "one")
    await wait_final(api, rejected)
    await wait_final(api, done)
    page = await api.get("/ui/sagas")
    assert page.status_code == 200
    assert page.text.index(done[:8]) < page.text.index(rejected[:8])  # newest first
    compensated = await api.get("/ui/sagas", params={"status": "compensated"})
    assert rejected[:8] in compensated.text
    assert done[:8] not in compensated.text
    by_definition = await api.get("/ui/sagas", params={"definition": "one"})
    assert done[:8] in by_definition.text
    assert rejected[:8] not in by_definition.text
    refused = await api.get("/ui/sagas", params={"status": "nonsense"})
    assert refused.status_code == 422


async def test_a_saga_page_shows_steps_timeline_and_history_with_user_data_escaped(
    api: httpx.AsyncClient, participant: ScriptedParticipant
) -> None:
    participant.script["b"] = [503]
    participant.steady["c"] = 409
    await register(api, "escapes", [step("a"), step("b"), step("c")])
    saga_id = await start(api, "escapes", {"note": MALICIOUS})
    assert (await wait_final(api, saga_id))["status"] == "compensated"
    page = await api.get(f"/ui/sagas/{saga_id}")
    assert page.status_code == 200
    assert MALICIOUS not in page.text
    assert "&lt;script&gt;alert(" in page.text
    assert "<svg" in page.text
    assert page.text.count('class="bar ') >= 6  # a, b twice, c, two compensations
    for name in ("a", "b", "c"):
        assert f'data-step="{name}"' in page.text
    failures = await api.get(f"/ui/sagas/{saga_id}", params={"failures": "true"})
    assert failures.text.count("<tr class=") < page.text.count("<tr class=")
    missing = await api.get("/ui/sagas/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404
    assert "Not found" in missing.text


async def test_actions_need_the_page_token_and_answer_the_apis_refusal(
    api: httpx.AsyncClient, participant: ScriptedParticipant
) -> None:
    participant.steady["a"] = 503
    await register(
        api,
        "parks",
        [step("a", retry={"max_attempts": 2, "initial_backoff_ms": 10, "max_backoff_ms": 10})],
        on_failure="park",
    )
    saga_id = await start(api, "parks")
    assert (await wait_final(api, saga_id))["status"] == "failed"
    page = await api.get(f"/ui/sagas/{saga_id}")
    token = token_of(page)
    assert api.cookies.get(CSRF_COOKIE) == token
    forged = await api.post(f"/ui/sagas/{saga_id}/retry")
    assert forged.status_code == 403
    wrong = await api.post(f"/ui/sagas/{saga_id}/retry", headers={"X-CSRF-Token": "x" * 43})
    assert wrong.status_code == 403
    participant.steady["a"] = 200  # the participant is fixed
    retried = await api.post(f"/ui/sagas/{saga_id}/retry", headers={"X-CSRF-Token": token})
    assert retried.status_code == 200, retried.text
    assert retried.json()["ok"] is True
    assert (await wait_final(api, saga_id))["status"] == "completed"
    again = await api.post(f"/ui/sagas/{saga_id}/cancel", data={"csrf": token})
    assert again.status_code == 409
    assert again.json()["ok"] is False
    assert "completed" in again.json()["message"]
    state = (await api.get(f"/ui/sagas/{saga_id}/state")).json()
    assert state["status"] == "completed"


async def test_with_an_api_key_the_ui_asks_for_it_once(database_url: str) -> None:
    settings = fast_settings(database_url, {}, api_key="k-0123456789abcdef")
    async with running_orchestrator(settings) as client:
        redirected = await client.get("/ui/sagas")
        assert redirected.status_code == 303
        assert redirected.headers["location"].startswith("/ui/login")
        login = await client.get("/ui/login", params={"next": "/ui/sagas?status=failed"})
        assert 'type="password"' in login.text
        assert ">API key</label>" in login.text
        token = token_of(login)
        refused = await client.post(
            "/ui/login", data={"key": "wrong", "csrf": token, "next": "/ui/sagas"}
        )
        assert refused.status_code == 401
        assert "refused" in refused.text
        accepted = await client.post(
            "/ui/login",
            data={"key": "k-0123456789abcdef", "csrf": token, "next": "/ui/sagas?status=failed"},
        )
        assert accepted.status_code == 303
        assert accepted.headers["location"] == "/ui/sagas?status=failed"
        cookie = accepted.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        assert (await client.get("/ui/sagas")).status_code == 200
        elsewhere = await client.post(
            "/ui/login", data={"key": "k-0123456789abcdef", "csrf": token, "next": "//evil"}
        )
        assert elsewhere.headers["location"] == "/ui/sagas"
        # The API itself still wants its header: the cookie is the UI's.
        assert (await client.get("/v1/sagas")).status_code == 401


async def test_bulk_retry_of_the_filtered_failed_sagas_shows_its_count_first(
    api: httpx.AsyncClient, participant: ScriptedParticipant
) -> None:
    participant.steady["a"] = 503
    once = {"max_attempts": 1, "initial_backoff_ms": 10, "max_backoff_ms": 10}
    await register(api, "parks", [step("a", retry=once)], on_failure="park")
    await register(api, "other", [step("a", retry=once)], on_failure="park")
    ids = [await start(api, "parks") for _ in range(3)]
    other = await start(api, "other")
    for saga_id in [*ids, other]:
        assert (await wait_final(api, saga_id))["status"] == "failed"
    page = await api.get("/ui/sagas", params={"status": "failed", "definition": "parks"})
    assert 'data-count="3"' in page.text
    assert "Retry the 3 failed sagas of parks" in page.text
    participant.steady["a"] = 200
    token = token_of(page)
    assert (await api.post("/ui/sagas/retry", data={"definition": "parks"})).status_code == 403
    done = await api.post("/ui/sagas/retry", data={"definition": "parks", "csrf": token})
    assert done.json()["retried"] == 3
    for saga_id in ids:
        assert (await wait_final(api, saga_id))["status"] == "completed"
    assert (await api.get(f"/v1/sagas/{other}")).json()["status"] == "failed"


async def test_definitions_participants_and_faults_pages(
    api: httpx.AsyncClient, participant: ScriptedParticipant
) -> None:
    await register(api, "shown", [step("a"), without_undo("b", "pivot"), without_undo("c")])
    changed = [step("a"), without_undo("b", "pivot")]
    await register(api, "shown", changed)  # version 2
    page = await api.get("/ui/definitions")
    assert page.status_code == 200
    assert 'data-definition="shown"' in page.text
    assert "version 2" in page.text
    assert "<svg" in page.text
    first = await api.get("/ui/definitions", params={"name": "shown", "version": 1})
    assert "version 1" in first.text
    missing = await api.get("/ui/definitions", params={"name": "shown", "version": 9})
    assert missing.status_code == 404
    participants = await api.get("/ui/participants")
    assert 'data-participant="p"' in participants.text
    assert ">up<" in participants.text
    faults = await api.get("/ui/faults")  # the test settings enable faults
    assert faults.status_code == 200
    assert 'href="/ui/faults"' in faults.text


async def test_filters_for_failed_step_creation_time_and_id_prefix(
    api: httpx.AsyncClient, participant: ScriptedParticipant
) -> None:
    participant.steady["b"] = 409
    await register(api, "two", [step("a"), step("b")])
    await register(api, "one", [step("a")])
    rejected = await start(api, "two")
    await wait_final(api, rejected)
    between = (await api.get(f"/v1/sagas/{rejected}")).json()["created_at"]
    done = await start(api, "one")
    await wait_final(api, done)

    async def listed(**params: str) -> set[str]:
        page = (await api.get("/v1/sagas", params=params)).json()
        return {s["id"] for s in page["items"]}

    assert await listed(step="b") == {rejected}
    assert await listed(step="a") == set()
    assert await listed(created_after=between) == {done}
    assert await listed(created_before=between) == set()
    assert await listed(id=done[:6]) == {done} | ({rejected} if rejected[:6] == done[:6] else set())
    assert await listed(id=done.replace("-", "")) == {done}
    refused = await api.get("/v1/sagas", params={"id": "xyz"})
    assert refused.status_code == 422
    assert refused.json()["error"]["fields"][0]["field"] == "id"
    page = await api.get("/ui/sagas", params={"step": "b", "id": rejected[:8]})
    assert rejected[:8] in page.text
    assert done[:8] not in page.text
    assert 'name="step" value="b"' in page.text
    naive = between[:16]  # YYYY-MM-DDTHH:MM, as a browser's datetime-local sends it (UTC)
    assert (await api.get("/ui/sagas", params={"created_after": naive})).status_code == 200
    bad = await api.get("/ui/sagas", params={"created_after": "yesterday"})
    assert bad.status_code == 422
    assert "created_after" in bad.text
    bad_id = await api.get("/ui/sagas", params={"id": "not-hex!"})
    assert bad_id.status_code == 422
