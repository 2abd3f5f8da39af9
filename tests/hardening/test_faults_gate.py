"""Fault endpoints: 404 unless enabled, behind the key when on, and loud in the log at start."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from participants.registry import SERVICES
from tests.hardening.helpers import KEY, assert_error
from tests.support.orchestrator import fast_settings, running_orchestrator
from tests.support.servers import serve_app

pytestmark = pytest.mark.postgres

RULE = {"participant": "p", "mode": "error", "status": 503}


async def test_off_by_default_404_and_undocumented(
    database_url: str, participant_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = fast_settings(database_url, {"p": [participant_url]}, enable_faults=False)
    async with running_orchestrator(settings) as api:
        assert_error(await api.get("/v1/faults"), 404, "not_found")
        assert_error(await api.post("/v1/faults", json=RULE), 404, "not_found")
        assert_error(await api.delete("/v1/faults"), 404, "not_found")
        assert_error(await api.delete("/v1/faults/1"), 404, "not_found")
        paths = (await api.get("/openapi.json")).json()["paths"]
        assert not [p for p in paths if p.startswith("/v1/faults")]
    assert "FAULT INJECTION" not in caplog.text


async def test_on_warns_at_start_and_needs_the_key(
    database_url: str, participant_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = fast_settings(database_url, {"p": [participant_url]}, api_key=KEY)
    async with running_orchestrator(settings) as api:
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert any("FAULT INJECTION IS ENABLED" in r.getMessage() for r in warnings)
        assert_error(await api.post("/v1/faults", json=RULE), 401)
        assert_error(await api.get("/v1/faults"), 401)
        headers = {"Authorization": f"Bearer {KEY}"}
        created = await api.post("/v1/faults", json=RULE, headers=headers)
        assert created.status_code == 201, created.text
        assert (await api.delete("/v1/faults", headers=headers)).json() == {"deleted": 1}


@pytest.mark.parametrize("enabled", [False, True])
async def test_kit_faults_the_same(
    enabled: bool, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = SERVICES["payments"]
    settings = spec.settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/payments.db", enable_faults=enabled
    )
    caplog.set_level(logging.INFO)
    async with (
        serve_app(spec.create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        rule = {"mode": "error_before_commit"}
        if not enabled:
            for response in (
                await client.get("/_faults"),
                await client.post("/_faults", json=rule),
                await client.delete("/_faults"),
                await client.post("/_reset"),
            ):
                assert response.status_code == 404
                assert response.json()["error"]["code"] == "not_found"
            assert "FAULT INJECTION" not in caplog.text
        else:
            assert (await client.post("/_faults", json=rule)).status_code in (200, 201)
            assert (await client.get("/_faults")).status_code == 200
            loud = [
                r
                for r in caplog.records
                if r.levelno >= logging.WARNING and "FAULT INJECTION ENABLED" in r.getMessage()
            ]
            assert loud
            assert "Never enable this in production" in loud[0].getMessage()
