from __future__ import annotations

import json
import logging

from orchestrator.logs import JsonFormatter, TextFormatter


def record(fields: dict[str, object]) -> logging.LogRecord:
    rec = logging.LogRecord("orchestrator.calls", logging.INFO, __file__, 1, "call", None, None)
    rec.fields = fields
    return rec


def test_json_line_carries_the_fields() -> None:
    line = JsonFormatter().format(record({"saga_id": "s1", "step": "a", "duration_ms": 1.5}))
    data = json.loads(line)
    assert data["message"] == "call"
    assert data["level"] == "info"
    assert data["saga_id"] == "s1"
    assert data["duration_ms"] == 1.5
    assert data["ts"].endswith("+00:00")


def test_text_line_is_readable() -> None:
    line = TextFormatter().format(record({"saga_id": "s1", "error": None, "step": "a"}))
    assert line.endswith("call saga_id=s1 step=a")
