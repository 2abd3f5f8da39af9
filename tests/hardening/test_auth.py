"""Authentication: every /v1 call needs a configured key; callbacks need their token instead."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.hardening.helpers import KEY, OLD_KEY, assert_error, register, start
from tests.support.orchestrator import fast_settings, running_orchestrator, step, wait_final
from tests.support.participant import ScriptedParticipant

pytestmark = pytest.mark.postgres

SAGA = str(Path(sys.executable).with_name("saga"))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _example(schema: dict[str, Any], path: str) -> str:
    # Fill path parameters with something well-formed; auth comes before lookups.
    return (
        path.replace("{id}", "00000000-0000-0000-0000-000000000000")
        .replace("{name}", "d")
        .replace("{version}", "1")
        .replace("{step}", "a")
        .replace("{rule_id}", "1")
    )


async def test_every_v1_operation_needs_the_key(database_url: str, participant_url: str) -> None:
    settings = fast_settings(database_url, {"p": [participant_url]}, api_key=KEY)
    async with running_orchestrator(settings) as api:
        document = (await api.get("/openapi.json")).json()
        secured = [
            (method, path)
            for path, item in document["paths"].items()
            for method, operation in item.items()
            if operation.get("security")
        ]
        # Everything under /v1 but the callback completion is declared secured...
        v1 = {
            (m, p)
            for p, item in document["paths"].items()
            for m in item
            if p.startswith("/v1/") and not p.endswith("/complete")
        }
        assert set(secured) == v1
        assert len(v1) >= 15
        # ...and really is: no key, a wrong key, the right key under another scheme.
        for method, path in secured:
            url = _example(document, path)
            for headers in (
                {},
                bearer("wrong"),
                {"Authorization": f"Basic {KEY}"},
                {"Authorization": "Bearer"},
            ):
                response = await api.request(method.upper(), url, headers=headers, json={})
                assert_error(response, 401, "unauthorized")
                assert response.headers["www-authenticate"] == "Bearer"


async def test_rotation_both_keys_work(database_url: str, participant_url: str) -> None:
    settings = fast_settings(database_url, {"p": [participant_url]}, api_key=f"{OLD_KEY}, {KEY}")
    async with running_orchestrator(settings) as api:
        for key in (OLD_KEY, KEY):
            assert (await api.get("/v1/definitions", headers=bearer(key))).status_code == 200
            # The scheme is case-insensitive, as RFC 7235 says.
            headers = {"Authorization": f"bearer {key}"}
            assert (await api.get("/v1/sagas", headers=headers)).status_code == 200
        # A prefix or a suffix of a key is no key.
        for almost in (KEY[:-1], KEY + "x", f"{OLD_KEY},{KEY}"):
            assert_error(await api.get("/v1/sagas", headers=bearer(almost)), 401)


async def test_operations_endpoints_stay_open(database_url: str, participant_url: str) -> None:
    settings = fast_settings(database_url, {"p": [participant_url]}, api_key=KEY)
    async with running_orchestrator(settings) as api:
        assert (await api.get("/healthz")).status_code == 200
        assert (await api.get("/readyz")).status_code == 200
        assert (await api.get("/metrics")).status_code == 200
        assert (await api.get("/openapi.json")).status_code == 200


async def test_metrics_behind_the_key_when_asked(database_url: str, participant_url: str) -> None:
    settings = fast_settings(
        database_url, {"p": [participant_url]}, api_key=KEY, metrics_require_key=True
    )
    async with running_orchestrator(settings) as api:
        assert_error(await api.get("/metrics"), 401)
        assert_error(await api.get("/metrics", headers=bearer("nope")), 401)
        response = await api.get("/metrics", headers=bearer(KEY))
        assert response.status_code == 200
        assert "saga" in response.text
        assert (await api.get("/healthz")).status_code == 200  # still open


async def test_operator_actions_name_the_key_not_its_value(
    database_url: str, participant_url: str, participant: ScriptedParticipant
) -> None:
    participant.steady["a"] = 409
    settings = fast_settings(database_url, {"p": [participant_url]}, api_key=KEY)
    async with running_orchestrator(settings) as api:
        api.headers.update(bearer(KEY))
        await register(api, "d", [step("a")], on_failure="park")
        saga_id = await start(api, "d")
        assert (await wait_final(api, saga_id))["status"] == "failed"
        response = await api.post(f"/v1/sagas/{saga_id}/compensate")
        assert response.status_code == 200, response.text
        events = (await api.get(f"/v1/sagas/{saga_id}/events")).json()["items"]
        operator = [e for e in events if e["kind"] == "operator"]
        assert operator
        assert operator[0]["detail"]["by"].startswith("key:")
        assert KEY not in str(events)


async def test_callbacks_use_their_token_not_the_key(
    database_url: str, participant_url: str, participant: ScriptedParticipant
) -> None:
    participant.callbacks["b"] = None  # answer 202; the test completes it
    settings = fast_settings(database_url, {"p": [participant_url]}, api_key=KEY)
    async with running_orchestrator(settings) as api:
        api.headers.update(bearer(KEY))
        await register(api, "cb", [step("b", completion="callback", timeout_ms=20_000)])
        saga_id = await start(api, "cb")
        while "b" not in participant.callback_requests:
            await asyncio.sleep(0.05)
        url, token = participant.callback_requests["b"]
        done = {"outcome": "succeeded", "result": {"ok": True}}
        async with httpx.AsyncClient(timeout=10) as outsider:
            # The API key is no substitute for the token...
            assert_error(await outsider.post(url, json=done, headers=bearer(KEY)), 403)
            # ...a wrong or non-ASCII token is refused...
            wrong = {"X-Saga-Callback-Token": "0" * 64}
            assert_error(await outsider.post(url, json=done, headers=wrong), 403)
            odd = {"X-Saga-Callback-Token": "é".encode("latin-1") * 8}
            assert_error(await outsider.post(url, json=done, headers=odd), 403)
            # ...and the token alone, without any key, completes the step.
            ok = await outsider.post(url, json=done, headers={"X-Saga-Callback-Token": token})
            assert ok.status_code == 200, ok.text
        assert (await wait_final(api, saga_id))["status"] == "completed"


async def _saga_cli(*args: str, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        SAGA,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode()


async def test_cli_reads_the_key_from_the_environment(
    database_url: str, participant_url: str
) -> None:
    settings = fast_settings(database_url, {"p": [participant_url]}, api_key=f"{KEY},{OLD_KEY}")
    async with running_orchestrator(settings) as api:
        base = {k: v for k, v in os.environ.items() if not k.startswith("SAGA_")}
        base["SAGA_URL"] = str(api.base_url)
        code, out = await _saga_cli("list", env=base)
        assert code != 0, out
        assert "401" in out, out
        # The CLI sends the first key of a comma-separated list (the one to use now).
        code, out = await _saga_cli("list", env={**base, "SAGA_API_KEY": f"{KEY},{OLD_KEY}"})
        assert code == 0, out
        assert KEY not in out
