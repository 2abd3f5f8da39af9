"""What a participant's answer means for the saga (pure)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from orchestrator.fault_rules import FaultRule
from orchestrator.machine import OutcomeKind


@dataclass(frozen=True)
class CallResult:
    """One attempt's outcome, with what the history records of it."""

    kind: OutcomeKind
    status: int | None = None
    result: Any = None
    error: str | None = None
    duration_ms: float = 0.0
    url: str | None = None
    fault: str | None = None


def call_result(
    started: float,
    kind: OutcomeKind,
    url: str | None,
    fault: FaultRule | None,
    *,
    status: int | None = None,
    result: Any = None,
    error: str | None = None,
) -> CallResult:
    """The outcome of an attempt begun at ``started`` (``time.perf_counter()``), timed now."""
    return CallResult(
        kind=kind,
        status=status,
        result=result,
        error=error,
        duration_ms=(time.perf_counter() - started) * 1000,
        url=url,
        fault=fault.mode if fault is not None else None,
    )


def classify_status(status: int) -> OutcomeKind:
    """2xx succeeded; 408, 429 and 5xx transient; other 4xx a business rejection."""
    if 200 <= status < 300:
        return OutcomeKind.SUCCEEDED
    if status in (408, 429) or status >= 500 or status < 400:
        return OutcomeKind.TRANSIENT
    return OutcomeKind.REJECTED


def _error_text(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200].decode(errors="replace")
    if isinstance(data, dict):
        error = data.get("error", data.get("detail", data))
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])[:500]
        return json.dumps(error)[:500]
    return json.dumps(data)[:500]


def classify_response(status: int, body: bytes) -> tuple[OutcomeKind, Any, str | None]:
    """``(kind, result, error)`` for an HTTP answer; a 2xx must carry JSON (or nothing)."""
    kind = classify_status(status)
    if kind is not OutcomeKind.SUCCEEDED:
        return kind, None, f"HTTP {status}: {_error_text(body)}"
    if not body.strip():
        return kind, {}, None
    try:
        return kind, json.loads(body), None
    except ValueError:
        return OutcomeKind.TRANSIENT, None, f"HTTP {status} with a body that is not JSON"
