"""No SSRF (participants come only from configuration) and templates that are only data."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.hardening.helpers import assert_error, register, start
from tests.support.orchestrator import fast_settings, running_orchestrator, step, wait_final
from tests.support.participant import ScriptedParticipant

pytestmark = pytest.mark.postgres

BAD_PATHS = [
    "http://169.254.169.254/latest/meta-data",
    "https://evil.example/x",
    "//evil.example/x",
    "evil.example/x",
    "/a/../../admin",
    "/a/%2e%2e/admin",
    "/%2F%2Fevil.example",
    "/a%5c..%5cadmin",
    "/a?redirect=http://evil",
    "/a#frag",
    "/a%00b",
    "/a b",
    "",
    "/" + "a" * 600,
]


@pytest.fixture
async def api(database_url: str, participant_url: str) -> Any:
    async with running_orchestrator(fast_settings(database_url, {"p": [participant_url]})) as c:
        yield c


async def test_paths_are_relative_without_host_or_dot_dot(api: httpx.AsyncClient) -> None:
    for path in BAD_PATHS:
        for field in ("action", "compensation"):
            bad = step("a")
            bad[field] = {"path": path}
            response = await api.post("/v1/definitions", json={"name": "d", "steps": [bad]})
            assert_error(response, 422, field=f"steps.0.{field}.path")


async def test_a_definition_cannot_name_a_url(api: httpx.AsyncClient) -> None:
    for extra in ({"url": "http://evil"}, {"base_url": "http://evil"}, {"host": "evil"}):
        response = await api.post(
            "/v1/definitions", json={"name": "d", "steps": [step("a", **extra)]}
        )
        assert_error(response, 422)
    inline = step("a")
    inline["action"] = {"path": "/do/a", "url": "http://evil"}
    assert_error(await api.post("/v1/definitions", json={"name": "d", "steps": [inline]}), 422)
    for participant in ("http://evil", "evil.example:80", "unconfigured"):
        response = await api.post(
            "/v1/definitions", json={"name": "d", "steps": [step("a", participant=participant)]}
        )
        assert_error(response, 422, field="steps.0.participant")


async def test_calls_go_only_to_the_configured_base_url(
    api: httpx.AsyncClient, participant: ScriptedParticipant
) -> None:
    ok = step("a")
    ok["action"] = {"path": "/do/a@evil.example:80"}  # '@' in a path is no userinfo
    await register(api, "d", [ok])
    saga = await wait_final(api, await start(api, "d"))
    # The scripted participant answered (a 404 from its router rejects the step):
    # the call reached the configured host, whatever the path looked like.
    events = (await api.get(f"/v1/sagas/{saga['id']}/events")).json()["items"]
    urls = [e["detail"]["url"] for e in events if e["kind"] == "call"]
    assert urls
    assert all(u.startswith(str(participant_base(api))) for u in urls)


def participant_base(api: httpx.AsyncClient) -> str:
    settings = api.app.state.runtime.settings  # type: ignore[attr-defined]
    base: str = settings.participants["p"][0]
    return base


LOOKS_LIKE_CODE = [
    "{{7*7}}",
    "${7*7}",
    "#{7*7}",
    "<%= 7*7 %>",
    "__import__('os').system('touch /tmp/saga-pwned')",
    "$(touch /tmp/saga-pwned)",
    "`id`",
    "lambda: 1",
    "$.input",
    "$.results",
    "$.",
    "$..input.a",
    "$.INPUT.a",
    " $.input.a",
]


async def test_templates_only_copy_values_by_path(
    api: httpx.AsyncClient, participant: ScriptedParticipant
) -> None:
    body = {
        "literals": LOOKS_LIKE_CODE,
        "copied": "$.input.a",
        "nested": {"deep": ["$.input.obj.k", {"x": "$.input.list.1"}]},
        # What would be an expression elsewhere is a path to a key here.
        "expression": "$.input.a + 1",
        "subscript": "$.input.a[0]",
    }
    action = {"path": "/do/a", "body": body}
    await register(api, "t", [step("a", action=action)])
    saga_input = {
        "a": "$.input.secret",  # a value that looks like a template is copied as it is
        "secret": "must-not-be-reached",
        "obj": {"k": "{{7*7}}"},
        "list": ["zero", "__import__('os')"],
        "a + 1": "the key 'a + 1'",
        "a[0]": "the key 'a[0]'",
    }
    saga = await wait_final(api, await start(api, "t", saga_input))
    assert saga["status"] == "completed", saga
    sent = next(r["body"] for r in participant.requests if r["step"] == "a")
    assert sent == {
        "literals": LOOKS_LIKE_CODE,
        "copied": "$.input.secret",
        "nested": {"deep": ["{{7*7}}", {"x": "__import__('os')"}]},
        "expression": "the key 'a + 1'",
        "subscript": "the key 'a[0]'",
    }


async def test_paths_name_keys_not_attributes(api: httpx.AsyncClient) -> None:
    action = {"path": "/do/a", "body": {"c": "$.input.__class__.__name__"}}
    await register(api, "attr", [step("a", action=action)])
    response = await api.post("/v1/sagas", json={"definition": "attr", "input": {"x": 1}})
    assert_error(response, 422, field="input.__class__.__name__")
    # With such a key in the input, it is just a key.
    response = await api.post(
        "/v1/sagas",
        json={"definition": "attr", "input": {"__class__": {"__name__": "plain"}}},
    )
    assert response.status_code == 201, response.text
