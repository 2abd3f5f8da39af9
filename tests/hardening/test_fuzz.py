"""Schemathesis against the live OpenAPI document of a real ``saga serve`` process.

Two runs, one with the API key and one without, each with a bounded number of
examples per operation and a fixed seed (so CI is repeatable; change
``SAGA_FUZZ_SEED`` to explore). Both must find no 5xx and no answer that
breaks the document (status, content type, headers, body schema), and no
schema-invalid request may be accepted. One check is left out on purpose:
``positive_data_acceptance`` expects every schema-valid request to succeed,
but a definition naming an unknown participant or a cursor this API never
issued is valid JSON Schema and still rightly refused.

The figures of each run are printed (``-s``) and written to the JSON reports
under the test's temporary directory.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.hardening.helpers import KEY
from tests.support.participant import ScriptedParticipant
from tests.support.servers import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

BIN = Path(sys.executable).parent
MAX_EXAMPLES = int(os.environ.get("SAGA_FUZZ_EXAMPLES", "25"))
SEED = int(os.environ.get("SAGA_FUZZ_SEED", "20240607"))
CHECKS = ["--checks", "all", "--exclude-checks", "positive_data_acceptance"]


async def _wait_healthy(url: str, process: asyncio.subprocess.Process) -> None:
    async with httpx.AsyncClient(timeout=1) as client:
        for _ in range(300):
            if process.returncode is not None:
                raise RuntimeError(f"saga serve exited with {process.returncode}")
            try:
                if (await client.get(url + "/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError("saga serve did not start")


@pytest.fixture
async def live_url(database_url: str, participant_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """``saga serve`` in its own process, keys and faults on, with some data to find."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    names = ("inventory", "payments", "shipping", "p")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SAGA_")},
        "SAGA_DATABASE_URL": database_url,
        "SAGA_PARTICIPANTS": json.dumps({n: participant_url for n in names}),
        "SAGA_API_KEY": KEY,
        "SAGA_ENABLE_FAULTS": "1",
        "SAGA_POLL_INTERVAL_S": "0.2",
        "SAGA_REQUEST_TIMEOUT_S": "5",
    }
    log = (tmp_path / "serve.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        str(BIN / "saga"), "serve", "--port", str(port), "--no-migrate",
        env=env, stdout=log, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        await _wait_healthy(url, process)
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=10
        ) as client:
            # The document's own examples, so that fuzzing reaches existing things too.
            document = (await client.get("/openapi.json")).json()
            for path in ("/v1/definitions", "/v1/sagas"):
                body = document["paths"][path]["post"]["requestBody"]["content"]
                response = await client.post(path, json=body["application/json"]["example"])
                assert response.status_code in (200, 201), response.text
        yield url
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)
        log.close()
    serve_log = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in serve_log, serve_log[-5000:]


async def _schemathesis(url: str, report: Path, *headers: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        str(BIN / "st"), "run", f"{url}/openapi.json",
        "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED), *CHECKS,
        "--workers", "2", "--request-timeout", "10", "--max-response-time", "5",
        "--report", "json", "--report-json-path", str(report),
        *headers,
        env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 240)
    text = out.decode(errors="replace")
    assert report.exists(), text[-5000:]
    result: dict[str, Any] = json.loads(report.read_text())
    result["output"] = text
    result["returncode"] = process.returncode
    return result


def _summary(name: str, result: dict[str, Any]) -> str:
    cases = result["test_cases"]
    return (
        f"schemathesis {name}: {result['operations']['tested']} operations, "
        f"{cases['generated']} test cases, {cases['with_failures']} with failures, "
        f"{len(result['errors'])} errors, seed {result['seed']}, "
        f"{result['running_time']:.1f}s"
    )


async def test_fuzz_with_and_without_the_key(
    live_url: str, tmp_path: Path, participant: ScriptedParticipant
) -> None:
    participant.steady.update({})  # the scripted participant answers 200 or 404 by path
    runs = {
        "with key": ("-H", f"Authorization: Bearer {KEY}"),
        "without key": (),
    }
    for name, headers in runs.items():
        report = tmp_path / f"schemathesis-{name.replace(' ', '-')}.json"
        result = await _schemathesis(live_url, report, *headers)
        print(_summary(name, result))
        server = (tmp_path / "serve.log").read_text(errors="replace").splitlines()
        noted = [line for line in server if '"level":"info"' not in line]
        tail = result["output"][-8000:] + "\n--- server log ---\n" + "\n".join(noted[-60:])
        assert result["complete"], tail
        assert result["returncode"] == 0, tail
        assert result["failures"] == [], tail
        assert result["errors"] == [], tail
        assert result["operations"]["tested"] >= 20
        assert result["test_cases"]["generated"] >= 10 * result["operations"]["tested"]
