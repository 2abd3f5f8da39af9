"""Logging: one structured line per participant call and per saga transition.

Events carry their fields in ``extra={"fields": {...}}``. ``json`` writes one
JSON object per line (for log pipelines); ``text`` writes a line a person can
read (``saga up``). Secrets never go into fields.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

calls = logging.getLogger("orchestrator.calls")
transitions = logging.getLogger("orchestrator.transitions")


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return fields if isinstance(fields, dict) else {}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        fields = _fields(record)
        if not fields:
            return base
        return base + " " + " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)


def configure(level: str = "INFO", fmt: str = "json") -> None:
    """Set up the root logger once for a process (``saga serve``, ``saga up``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # One line per participant call is ours to write, with the saga's fields.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    quiet_broker_client()


def quiet_broker_client(level: int = logging.CRITICAL) -> None:
    """Keep the broker client's reports of a lost connection out of the log.

    A broker that restarts is seen in the calls' outcomes and in aio-pika's
    one "reconnecting" line per attempt; aiormq's traceback of the reset and
    aio-pika's callback errors while the channel is gone add nothing to act on.
    """
    logging.getLogger("aiormq").setLevel(level)
    logging.getLogger("aio_pika.tools").setLevel(level)
