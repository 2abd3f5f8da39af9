"""Input limits and the request deadline: what no request may exceed, enforced up front.

- :class:`BodyLimit` answers 413 for a body over ``SAGA_MAX_BODY_BYTES``, before
  anything reads it (by ``Content-Length``, or while a chunked body streams in).
- :class:`GuardedRoute` parses JSON bodies itself and refuses what the database
  or the JSON encoder would choke on later, as a 4xx naming the field: nesting
  deeper than ``SAGA_MAX_JSON_DEPTH``, ``NaN``/``Infinity``, NUL characters and
  lone surrogates (PostgreSQL stores neither), in bodies, paths and queries.
- :class:`Deadline` answers 503 with ``Retry-After`` when a request is still
  unanswered after ``SAGA_REQUEST_TIMEOUT_S`` (the database is locked, slow or
  unreachable), so a client is never held indefinitely.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.api.errors import ApiError, error_response

log = logging.getLogger("orchestrator.api")

# PostgreSQL text and jsonb cannot hold NUL, and UTF-8 cannot encode a lone surrogate.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class BodyTooLarge(ApiError):
    """The request body is over the limit (raised while it streams in)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, "payload_too_large", f"the request body exceeds {limit} bytes")


class BodyLimit:
    """Answers 413 for a body over ``max_bytes`` (by Content-Length, or while streaming)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await BodyTooLarge(self.max_bytes).response()(scope, receive, send)
                return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            # Only reached when something read the body outside FastAPI's routing
            # (which answers 413 itself through the exception handlers).
            if not started:
                await exc.response()(scope, receive, send)


class _NotFinite(ValueError):
    pass


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _NotFinite(text)
    return value


def _no_constant(text: str) -> Any:
    raise _NotFinite(text)


def _unstorable(text: str, where: str) -> ApiError:
    found = _UNSTORABLE.search(text)
    char = repr(found.group()) if found else "a character"
    return ApiError(
        422,
        "invalid_request",
        "the request contains a character that cannot be stored",
        fields=[{"field": where, "message": f"contains {char} (NUL or a lone surrogate)"}],
    )


def _join(path: tuple[str, ...]) -> str:
    return ".".join(path) or "body"


def check_json(value: Any, max_depth: int, root: tuple[str, ...] = ()) -> None:
    """Raise :class:`ApiError` (422) for nesting deeper than ``max_depth`` or unstorable text.

    Iterative, so that a hostile document cannot exhaust the interpreter's stack.
    """
    stack: list[tuple[Any, int, tuple[str, ...]]] = [(value, 0, root)]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, dict | list):
            if depth + 1 > max_depth:
                raise ApiError(
                    422,
                    "invalid_request",
                    f"the JSON nests deeper than {max_depth} levels",
                    fields=[{"field": _join(path), "message": f"deeper than {max_depth} levels"}],
                )
            if isinstance(item, dict):
                for key, child in item.items():
                    if _UNSTORABLE.search(key):
                        raise _unstorable(key, _join((*path, key)))
                    stack.append((child, depth + 1, (*path, key)))
            else:
                stack.extend((c, depth + 1, (*path, str(i))) for i, c in enumerate(item))
        elif isinstance(item, str) and _UNSTORABLE.search(item):
            raise _unstorable(item, _join(path))
        elif isinstance(item, float) and not math.isfinite(item):
            raise ApiError(
                422,
                "invalid_request",
                "JSON numbers must be finite",
                fields=[{"field": _join(path), "message": "not a finite number"}],
            )


def parse_json(body: bytes, max_depth: int) -> Any:
    """Decode a request body; only ``JSONDecodeError`` escapes (FastAPI answers it, 400)."""
    try:
        data = json.loads(body, parse_float=_finite_float, parse_constant=_no_constant)
    except json.JSONDecodeError:
        raise
    except _NotFinite as exc:
        raise ApiError(
            422, "invalid_request", f"JSON numbers must be finite, not {exc.args[0]}"
        ) from None
    except RecursionError:
        raise ApiError(
            422, "invalid_request", f"the JSON nests deeper than {max_depth} levels"
        ) from None
    except ValueError as exc:  # undecodable bytes, an integer of thousands of digits
        raise ApiError(400, "invalid_json", f"the request body is not valid JSON: {exc}") from None
    check_json(data, max_depth)
    return data


def check_input_size(value: Any, field: str, limit: int) -> None:
    """413 naming ``field`` when ``value``, as compact JSON, is over ``limit`` bytes."""
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > limit:
        raise ApiError(
            413,
            "payload_too_large",
            f"{field} is {size} bytes as JSON; the limit is {limit} (SAGA_MAX_INPUT_BYTES)",
            fields=[{"field": field, "message": f"larger than {limit} bytes"}],
        )


class GuardedRequest(Request):
    """A request whose JSON body is decoded and checked by :func:`parse_json`."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            max_depth: int = self.app.state.runtime.settings.max_json_depth
            self._json = parse_json(await self.body(), max_depth)
        return self._json


def _check_url(request: Request) -> None:
    if _UNSTORABLE.search(request.url.path):
        raise _unstorable(request.url.path, "path")
    for name, value in request.query_params.multi_items():
        if _UNSTORABLE.search(name) or _UNSTORABLE.search(value):
            raise _unstorable(value, f"query.{name}")


class GuardedRoute(APIRoute):
    """Every route of the API: URL and JSON body checked before the endpoint runs."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            _check_url(request)
            return await handler(GuardedRequest(request.scope, request.receive))

        return guarded


class Deadline:
    """503 with ``Retry-After`` for a request still unanswered after ``seconds``.

    Bounds every wait the API can meet (a connection pool that stays exhausted,
    a lock, a database host that does not answer) with one number. A response
    already started is left to finish: its status cannot change any more.
    """

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            async with asyncio.timeout(self.seconds):
                await self.app(scope, receive, tracking_send)
        except TimeoutError:
            log.warning(
                "%s %s: no answer within %.1fs; answered 503",
                scope["method"],
                scope["path"],
                self.seconds,
            )
            if not started:
                response = error_response(
                    503,
                    "unavailable",
                    f"the request could not be served within {self.seconds:g}s "
                    "(database busy or unreachable); retry shortly",
                )
                await response(scope, receive, send)
