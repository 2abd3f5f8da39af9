"""Small helpers for talking to kit-built services the way the orchestrator does."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx


def key(saga: str, step: str, phase: str = "action", attempt: int = 1) -> dict[str, str]:
    """The protocol headers of one call."""
    return {
        "Idempotency-Key": f"{saga}:{step}:{phase}",
        "X-Saga-Id": saga,
        "X-Saga-Step": step,
        "X-Saga-Attempt": str(attempt),
    }


async def call_until_answered(
    client: httpx.AsyncClient, path: str, body: Any, headers: dict[str, str], tries: int = 20
) -> httpx.Response:
    """POST like the orchestrator: retry transient answers (503, 500) with the same key."""
    for _ in range(tries):
        response = await client.post(path, json=body, headers=headers)
        if response.status_code not in (500, 503):
            return response
        await asyncio.sleep(0.01)
    raise AssertionError(f"{path} still transient after {tries} tries: {response.text}")


async def ledger(client: httpx.AsyncClient, saga_id: str | None = None) -> dict[str, str]:
    """The service's ledger as ``{key: status}``."""
    params = {"saga_id": saga_id} if saga_id else {}
    rows = (await client.get("/_ledger", params=params)).json()
    return {row["key"]: row["status"] for row in rows}


async def metric(client: httpx.AsyncClient, name: str, **labels: str) -> float:
    """The sum of a counter's samples matching ``labels`` on ``/metrics``."""
    text = (await client.get("/metrics")).text
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{name}(?:\{{(.*)\}})? (\S+)$", line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(2))
    return total
