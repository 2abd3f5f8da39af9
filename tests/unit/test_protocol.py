"""The participant protocol, orchestrator side: what goes on the wire, and the kit agreeing.

The kit and the orchestrator never import each other; these tests read both
and hold their names of the protocol's headers equal.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from orchestrator import tracing
from orchestrator.api.app import create_app
from orchestrator.settings import Settings
from orchestrator.transport import protocol
from orchestrator.transport.call import CallIdentity, CallRequest
from orchestrator.transport.client import ParticipantClient
from orchestrator.transport.routing import Routing
from participants.kit import callbacks as kit_callbacks
from participants.kit import keys as kit_keys
from participants.kit.schema import Phase
from tests.support.servers import serve_app

ROOT = Path(__file__).resolve().parents[2]
CALL = CallIdentity("orders", "payments", "charge", "action", "5b1c", 3)


class _Tokens:
    def token(self, call: CallIdentity) -> str:
        return f"token-of-{call.saga_id}-{call.step}-{call.attempt}"


def test_the_headers_of_a_plain_call() -> None:
    sent = protocol.headers(CallRequest(CALL, "/charge", {}, timeout_s=1))
    assert list(sent.items()) == [
        ("Idempotency-Key", "5b1c:charge:action"),
        ("X-Saga-Id", "5b1c"),
        ("X-Saga-Step", "charge"),
        ("X-Saga-Attempt", "3"),
        ("Content-Type", "application/json"),
    ]


def test_a_traced_callback_call_carries_its_traceparent_and_how_to_complete_it() -> None:
    request = CallRequest(
        CALL, "/charge", {}, timeout_s=1, trace_id="ab" * 16, awaits_callback=True
    )
    url = protocol.callback_url("http://orch:8000", CALL)
    sent = protocol.headers(request, (url, "t0k"))
    assert sent["X-Saga-Callback-Url"] == "http://orch:8000/v1/sagas/5b1c/steps/charge/complete"
    assert sent["X-Saga-Callback-Token"] == "t0k"
    assert list(sent)[-3:] == ["traceparent", "X-Saga-Callback-Url", "X-Saga-Callback-Token"]
    ids = tracing.parse(sent["traceparent"])
    assert ids is not None
    assert ids[0] == "ab" * 16
    # Drawn once per attempt: the span recorded for the call names what was sent.
    assert request.traceparent == sent["traceparent"]


def test_the_idempotency_key_is_one_the_kit_parses_back() -> None:
    for phase in Phase:
        call = CallIdentity("d", "p", "step:with:colons", phase.value, "saga-1", 1)
        key = kit_keys.IdempotencyKey.parse(protocol.idempotency_key(call), phase)
        assert (key.saga_id, key.step, key.phase) == ("saga-1", "step:with:colons", phase)
        assert key.value == protocol.idempotency_key(call)


def test_the_kit_names_the_headers_as_the_orchestrator_does() -> None:
    assert kit_keys.IDEMPOTENCY_HEADER == protocol.IDEMPOTENCY_KEY
    assert kit_callbacks.CALLBACK_URL_HEADER == protocol.CALLBACK_URL
    assert kit_callbacks.CALLBACK_TOKEN_HEADER == protocol.CALLBACK_TOKEN
    assert kit_callbacks.ATTEMPT_HEADER == protocol.SAGA_ATTEMPT


def test_every_protocol_header_the_kit_spells_is_one_the_orchestrator_sends() -> None:
    # Some names are literals in the kit (read from a request, sent by its
    # contract check): any of them that drifted would be caught here.
    ours = {
        protocol.IDEMPOTENCY_KEY,
        protocol.SAGA_ID,
        protocol.SAGA_STEP,
        protocol.SAGA_ATTEMPT,
        protocol.CALLBACK_URL,
        protocol.CALLBACK_TOKEN,
    }
    spelled: set[str] = set()
    for source in sorted((ROOT / "participants" / "kit").glob("*.py")):
        for node in ast.walk(ast.parse(source.read_text())):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and re.fullmatch(r"(?i)x-saga-[a-z-]+|idempotency-key", node.value)
            ):
                spelled.add(node.value)
    assert {"X-Saga-Id", "X-Saga-Attempt"} <= spelled
    assert spelled <= ours


def test_the_api_declares_the_callback_route_of_the_protocol() -> None:
    app = create_app(Settings(database_url="postgresql+asyncpg://unused@127.0.0.1:1/unused"))
    operation = app.openapi()["paths"][protocol.CALLBACK_PATH]["post"]
    headers = [p["name"] for p in operation["parameters"] if p["in"] == "header"]
    assert headers == [protocol.CALLBACK_TOKEN.lower()]


def test_the_transport_imports_nothing_of_the_store_the_worker_or_the_api() -> None:
    # In a fresh interpreter, so that what other tests imported does not count:
    # this sees indirect imports too.
    probe = (
        "import sys, orchestrator.transport.client, orchestrator.transport.protocol\n"
        "print('\\n'.join(sorted(sys.modules)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.split()
    forbidden = (
        "orchestrator.store",
        "orchestrator.worker",
        "orchestrator.api",
        "orchestrator.cli",
    )
    assert [m for m in loaded if m.startswith(forbidden)] == []
    assert "orchestrator.transport.client" in loaded


@pytest.fixture
async def participant() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []

    async def handle(request: Request) -> JSONResponse:
        seen.append(dict(request.headers))
        return JSONResponse({"ok": True}, status_code=202)

    app = Starlette(routes=[Route("/charge", handle, methods=["POST"])])
    async with serve_app(app) as url:
        yield url, seen


async def test_the_client_frames_a_callback_call_with_the_issued_token(
    participant: tuple[str, list[dict[str, str]]],
) -> None:
    url, seen = participant
    client = ParticipantClient(
        Routing({"payments": [url]}), callbacks=_Tokens(), public_url="http://orch:8000"
    )
    try:
        request = CallRequest(CALL, "/charge", {"amount": 1}, timeout_s=5, awaits_callback=True)
        result = await client.call(request)
    finally:
        await client.aclose()
    assert result.status == 202
    [headers] = seen
    assert headers["idempotency-key"] == "5b1c:charge:action"
    assert headers["x-saga-callback-url"] == "http://orch:8000/v1/sagas/5b1c/steps/charge/complete"
    assert headers["x-saga-callback-token"] == "token-of-5b1c-charge-3"
    assert "traceparent" not in headers
