"""A contract check any saga participant can run against itself, over HTTP.

:func:`check_participant` plays the orchestrator against one action endpoint
(and its compensation, if any) of a running service and asserts the protocol
the orchestrator relies on: a repeated key replays the first answer, a reused
key with another body is refused, a compensation undoes once and replays, a
compensation that overtakes its action leaves a tombstone that refuses the
action, and ``/_ledger`` tells the truth about all of it. It works for any
service that claims to honour the protocol, kit-built or not::

    async with httpx.AsyncClient(base_url="http://127.0.0.1:9002") as client:
        await check_participant(client, "/charges", {"account": "bob", "amount": 1},
                                compensation="/charges/refund")

The check applies (and compensates) real effects, so point it at a test or
staging instance. Each failed expectation raises :class:`ContractViolation`.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from participants.kit.keys import IDEMPOTENCY_HEADER


class ContractViolation(AssertionError):
    """The service answered something the saga protocol does not allow."""


def _headers(saga: str, phase: str) -> dict[str, str]:
    return {IDEMPOTENCY_HEADER: f"{saga}:contract:{phase}", "X-Saga-Id": saga}


def _expect(condition: bool, what: str, response: httpx.Response | None = None) -> None:
    if not condition:
        detail = f" (got {response.status_code}: {response.text[:300]})" if response else ""
        raise ContractViolation(what + detail)


async def _ledger(client: httpx.AsyncClient, saga: str) -> dict[str, str]:
    rows = (await client.get("/_ledger", params={"saga_id": saga})).json()
    return {row["key"]: row["status"] for row in rows}


async def check_participant(
    client: httpx.AsyncClient,
    action: str,
    body: dict[str, Any],
    *,
    compensation: str | None = None,
) -> None:
    """Check the protocol on ``action`` (which must accept ``body``) and its ``compensation``."""
    saga = f"contract-{uuid.uuid4().hex[:12]}"
    applied = await _check_replays(client, action, body, saga)
    _expect(
        await _ledger(client, saga) == {f"{saga}:contract:action": "applied"},
        f"/_ledger should show {saga}:contract:action as applied",
    )
    if compensation is None:
        return
    await _check_undo(client, compensation, saga, applied)
    await _check_tombstone(client, action, body, compensation)


async def _check_replays(
    client: httpx.AsyncClient, action: str, body: dict[str, Any], saga: str
) -> httpx.Response:
    first = await client.post(action, json=body, headers=_headers(saga, "action"))
    _expect(first.is_success, f"POST {action} should succeed", first)
    again = await client.post(action, json=body, headers=_headers(saga, "action"))
    _expect(
        (again.status_code, again.json()) == (first.status_code, first.json()),
        "a repeated key should get the first answer",
        again,
    )
    # An extra field changes the request, not its validity.
    other = {**body, "contract_probe": uuid.uuid4().hex}
    reused = await client.post(action, json=other, headers=_headers(saga, "action"))
    _expect(reused.status_code == 409, "a reused key with another body should get 409", reused)
    return first


async def _check_undo(
    client: httpx.AsyncClient, compensation: str, saga: str, applied: httpx.Response
) -> None:
    default_body = {"saga_id": saga, "input": {}, "results": {"contract": applied.json()}}
    undo = await client.post(
        compensation, json=default_body, headers=_headers(saga, "compensation")
    )
    _expect(undo.status_code == 200, f"POST {compensation} should undo the action", undo)
    again = await client.post(
        compensation, json=default_body, headers=_headers(saga, "compensation")
    )
    _expect(
        (again.status_code, again.json()) == (200, undo.json()),
        "a repeated compensation should get the first answer",
        again,
    )
    expected = {
        f"{saga}:contract:action": "compensated",
        f"{saga}:contract:compensation": "applied",
    }
    _expect(await _ledger(client, saga) == expected, f"/_ledger should show {expected}")


async def _check_tombstone(
    client: httpx.AsyncClient, action: str, body: dict[str, Any], compensation: str
) -> None:
    saga = f"contract-{uuid.uuid4().hex[:12]}"
    default_body = {"saga_id": saga, "input": {}, "results": {}}
    early = await client.post(
        compensation, json=default_body, headers=_headers(saga, "compensation")
    )
    _expect(early.status_code == 200, "a compensation before its action should succeed", early)
    late = await client.post(action, json=body, headers=_headers(saga, "action"))
    _expect(late.status_code == 409, "an action after its compensation should get 409", late)
    expected = {f"{saga}:contract:action": "tombstone", f"{saga}:contract:compensation": "applied"}
    _expect(await _ledger(client, saga) == expected, f"/_ledger should show {expected}")
