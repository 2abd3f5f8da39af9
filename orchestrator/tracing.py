"""W3C trace context: one trace id per saga, a new span id per participant call."""

from __future__ import annotations

import re
import secrets

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def parse(traceparent: str | None) -> tuple[str, str] | None:
    """``(trace id, span id)`` of a valid ``traceparent``, else ``None``."""
    if traceparent:
        match = _TRACEPARENT.match(traceparent.strip().lower())
        if match and match.group(1) != "0" * 32 and match.group(2) != "0" * 16:
            return match.group(1), match.group(2)
    return None


def trace_id_from(traceparent: str | None) -> str:
    """The caller's trace id when it sent a valid ``traceparent``, else a new one."""
    ids = parse(traceparent)
    return ids[0] if ids is not None else secrets.token_hex(16)


def traceparent(trace_id: str) -> str:
    """A ``traceparent`` for one call of the saga traced by ``trace_id`` (sampled)."""
    return f"00-{trace_id}-{secrets.token_hex(8)}-01"
