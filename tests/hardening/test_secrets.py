"""Secrets: no API key, callback token or password in logs, errors or /v1/participants."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from orchestrator.api.redact import SecretFilter, redact
from orchestrator.settings import Settings
from participants.kit.settings import ParticipantSettings
from tests.hardening.helpers import KEY, OLD_KEY, assert_error, register, start
from tests.support.orchestrator import fast_settings, running_orchestrator, step, wait_final
from tests.support.participant import ScriptedParticipant

pytestmark = pytest.mark.postgres

DB_PASSWORD = "db-pass-S3CRET-4711"
PARTICIPANT_PASSWORD = "part-pass-S3CRET-0815"
CALLBACK_SECRET = "callback-key-S3CRET-" + "c" * 24


def with_password(url: str, user: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    if "@" in rest:
        rest = rest.split("@", 1)[1]
    return f"{scheme}://{user}:{password}@{rest}"


async def test_no_secret_leaves_the_process(
    database_url: str,
    participant_url: str,
    participant: ScriptedParticipant,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    participant.script["a"] = [503]  # a transient failure: warnings and history
    participant.callbacks["b"] = None
    settings = fast_settings(
        # The local server trusts loopback, so these passwords are carried but unused.
        with_password(database_url, "postgres", DB_PASSWORD),
        {"p": [with_password(participant_url, "svc", PARTICIPANT_PASSWORD)]},
        api_key=f"{KEY},{OLD_KEY}",
        callback_secret=CALLBACK_SECRET,
    )
    answers: list[httpx.Response] = []
    async with running_orchestrator(settings) as api:
        auth = {"Authorization": f"Bearer {KEY}"}
        answers.append(await api.get("/v1/sagas"))
        answers.append(await api.get("/v1/sagas", headers={"Authorization": "Bearer " + KEY[:-2]}))
        answers.append(await api.get("/v1/sagas", headers={"Authorization": f"Basic {OLD_KEY}"}))
        api.headers.update(auth)
        await register(api, "s", [step("a"), step("b", completion="callback", timeout_ms=20_000)])
        saga_id = await start(api, "s", {"note": "hello"})
        while "b" not in participant.callback_requests:
            await asyncio.sleep(0.05)
        url, token = participant.callback_requests["b"]
        done = {"outcome": "succeeded", "result": {}}
        async with httpx.AsyncClient(timeout=10) as outsider:
            answers.append(
                await outsider.post(url, json=done, headers={"X-Saga-Callback-Token": token[::-1]})
            )
            answers.append(
                await outsider.post(url, json=done, headers={"X-Saga-Callback-Token": token})
            )
        assert (await wait_final(api, saga_id))["status"] == "completed"
        answers.append(await api.get(f"/v1/sagas/{saga_id}"))
        answers.append(await api.get(f"/v1/sagas/{saga_id}/events"))
        participants = await api.get("/v1/participants")
        answers.append(participants)
        answers.append(await api.get("/metrics"))
        answers.append(await api.get("/openapi.json"))
        answers.append(await api.post("/v1/sagas", json={"definition": "s", "input": 1}))
        # What a library might log with a secret in it is masked on the way out.
        logging.getLogger("some.library").error(
            "connect to %s failed; headers: %s; key %s",
            settings.database_url,
            {"Authorization": f"Bearer {OLD_KEY}", "X-Saga-Callback-Token": token},
            KEY,
        )
        try:
            raise RuntimeError(f"cannot use {settings.database_url} with {KEY}")
        except RuntimeError:
            logging.getLogger("some.library").exception("boom")

    assert [a.status_code for a in answers[:5]] == [401, 401, 401, 403, 200]
    assert_error(answers[0], 401)
    base = participants.json()["items"][0]["base_urls"][0]
    assert base.startswith("http://svc:***@127.0.0.1:"), base
    everything = caplog.text + "".join(a.text for a in answers)
    assert "boom" in caplog.text
    assert "some.library" in caplog.text
    for secret in (KEY, OLD_KEY, DB_PASSWORD, PARTICIPANT_PASSWORD, CALLBACK_SECRET, token):
        assert secret not in everything, secret


def test_settings_repr_hides_secrets() -> None:
    settings = Settings(
        database_url=f"postgresql://saga:{DB_PASSWORD}@db:5432/saga",
        participants={"p": f"https://svc:{PARTICIPANT_PASSWORD}@pay:443"},
        api_key=f"{KEY},{OLD_KEY}",
        callback_secret=CALLBACK_SECRET,
    )
    shown = repr(settings) + str(settings)
    for secret in (KEY, OLD_KEY, DB_PASSWORD, PARTICIPANT_PASSWORD, CALLBACK_SECRET):
        assert secret not in shown
    assert "postgresql+asyncpg://saga:***@db:5432/saga" in shown
    kit = ParticipantSettings(database_url=f"postgresql://pay:{DB_PASSWORD}@db/pay")
    assert DB_PASSWORD not in repr(kit)


def test_redaction_patterns() -> None:
    assert redact("Authorization: Bearer abc.def-123") == "Authorization: Bearer ***"
    assert redact("postgresql://u:p%40ss@h:5/db") == "postgresql://u:***@h:5/db"
    assert redact("{'x-saga-callback-token': 'f00d'}") == "{'x-saga-callback-token': '***'}"
    assert redact("key k-123456 here", ["k-123456"]) == "key *** here"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s", ("k-123456",), None)
    SecretFilter(["k-123456"]).filter(record)
    assert record.getMessage() == "***"
