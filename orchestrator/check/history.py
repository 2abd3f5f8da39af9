"""The campaign client's recorded history: every operation it performs against the API.

Jepsen-style: an operation is an ``invoke`` entry, then exactly one
completion — ``ok`` (it happened; ``value`` says what was observed), ``fail``
(it definitely did not happen: a 4xx refusal, a connection never made) or
``info`` (unknown: a timeout, a cut connection, a 5xx). Each HTTP attempt is
its own operation, so a request the client retried through an outage leaves
one ``info`` per lost attempt and the completion of the last one.

Entries are appended in the order they happen (one event loop: the list
order is the real-time order) and streamed to a JSONL file as they are made,
so a campaign that dies still leaves its history. The format and the rules
the checker applies to it are in docs/check-history.md; the checker is
:mod:`orchestrator.check.history_check`.
"""

from __future__ import annotations

import contextvars
import json
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

import httpx

EntryType = Literal["invoke", "ok", "fail", "info"]
COMPLETIONS = ("ok", "fail", "info")
#: What the client does: start a saga, read it, cancel it, retry it, fetch its history.
FUNCTIONS = ("start", "read", "cancel", "retry", "compensate", "history")
#: Failures of a request that never reached the API: it cannot have taken effect.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
#: Answers whose effect is unknown: the request may have been applied before it failed.
UNKNOWN_STATUSES = frozenset({408, 500, 502, 503, 504})

#: Who performs the operations of the current task (a load lane, a repair, ...).
PROCESS: contextvars.ContextVar[str] = contextvars.ContextVar("saga_check_process", default="main")


@dataclass(frozen=True)
class Entry:
    """One line of the history."""

    index: int
    type: EntryType
    f: str
    op: int
    """The operation's number: its invoke and its completion share it."""
    process: str
    time_ns: int
    """Monotonic nanoseconds since the recorder started."""
    wall: str
    """UTC wall-clock time, ISO 8601."""
    saga: str | None = None
    key: str | None = None
    """A start's ``Idempotency-Key``."""
    value: Mapping[str, Any] | None = None
    """``ok``: what was observed (see :func:`observed`)."""
    http_status: int | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The entry as one JSON object (absent fields left out)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Entry:
        """Read an entry written by :meth:`as_json`."""
        return cls(
            index=int(data["index"]),
            type=data["type"],
            f=str(data["f"]),
            op=int(data["op"]),
            process=str(data["process"]),
            time_ns=int(data["time_ns"]),
            wall=str(data["wall"]),
            saga=data.get("saga"),
            key=data.get("key"),
            value=data.get("value"),
            http_status=data.get("http_status"),
            error=data.get("error"),
        )


def answer_type(status: int) -> EntryType:
    """How an HTTP answer completes an operation: 2xx ok, unknown 5xx/408 info, else fail."""
    if 200 <= status < 300:
        return "ok"
    return "info" if status in UNKNOWN_STATUSES else "fail"


def error_type(exc: BaseException) -> EntryType:
    """How an exception completes an operation: fail if the request never left, else info."""
    return "fail" if isinstance(exc, NOT_SENT) else "info"


def saga_observation(view: Mapping[str, Any]) -> dict[str, Any]:
    """What a saga view (``GET /v1/sagas/{id}`` and the answers of start, cancel, retry) shows."""
    steps = view.get("steps") or []
    pivot = next((s["name"] for s in steps if s.get("kind") == "pivot"), None)
    return {
        "id": str(view["id"]),
        "status": str(view["status"]),
        "version": view.get("version"),
        "steps": {str(s["name"]): str(s["status"]) for s in steps},
        "pivot": pivot,
    }


_EVENT_DETAIL = ("from", "to", "action", "status")


def history_observation(saga_id: str, events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """What ``GET /v1/sagas/{id}/events`` shows, reduced to what the checker reads."""
    kept = []
    for event in events:
        item = {k: event.get(k) for k in ("id", "kind", "step", "phase", "outcome")}
        raw = event.get("detail")
        detail: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
        item.update({k: detail[k] for k in _EVENT_DETAIL if k in detail})
        kept.append({k: v for k, v in item.items() if v is not None})
    return {"id": saga_id, "events": kept}


def observed(f: str, saga: str | None, body: Any) -> dict[str, Any] | None:
    """The ``value`` of an ``ok`` completion of ``f`` from the answer's JSON body."""
    if not isinstance(body, dict):
        return None
    if f == "history":
        return history_observation(str(body.get("saga_id", saga)), body.get("items") or [])
    if "id" in body and "status" in body:
        return saga_observation(body)
    return None


@dataclass
class Recorder:
    """Records operations as they happen; streams them to ``path`` when one is given."""

    path: Path | None = None
    entries: list[Entry] = field(default_factory=list)
    _origin: int = field(default_factory=time.monotonic_ns)
    _ops: int = 0
    _open: dict[int, Entry] = field(default_factory=dict)
    _file: IO[str] | None = None

    def invoke(self, f: str, *, saga: str | None = None, key: str | None = None) -> int:
        """Record that the current process begins ``f``; the operation's number."""
        self._ops += 1
        entry = self._append("invoke", f, self._ops, PROCESS.get(), saga=saga, key=key)
        self._open[entry.op] = entry
        return entry.op

    def complete(
        self,
        op: int,
        type: EntryType,
        *,
        value: Mapping[str, Any] | None = None,
        http_status: int | None = None,
        error: str | None = None,
    ) -> None:
        """Record how operation ``op`` ended."""
        began = self._open.pop(op)
        saga = began.saga or (str(value["id"]) if value and "id" in value else None)
        self._append(
            type,
            began.f,
            op,
            began.process,
            saga=saga,
            key=began.key,
            value=value,
            http_status=http_status,
            error=error,
        )

    def _append(self, type: EntryType, f: str, op: int, process: str, **fields: Any) -> Entry:
        entry = Entry(
            index=len(self.entries),
            type=type,
            f=f,
            op=op,
            process=process,
            time_ns=time.monotonic_ns() - self._origin,
            wall=datetime.now(UTC).isoformat(),
            **fields,
        )
        self.entries.append(entry)
        if self.path is not None:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("w", encoding="utf-8")
            self._file.write(json.dumps(entry.as_json(), separators=(",", ":")) + "\n")
            self._file.flush()
        return entry

    def close(self) -> None:
        """Close the file (operations still open stay without completion: unknown)."""
        if self._file is not None:
            self._file.close()
            self._file = None


def read_history(path: Path) -> list[Entry]:
    """The entries of a history file, in order."""
    return list(_lines(path))


def _lines(path: Path) -> Iterator[Entry]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                yield Entry.from_json(json.loads(line))
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not a history entry ({exc})") from exc
