"""One place mapping every failure to the documented error shape.

``{"error": {"code": "<snake_case>", "message": "...", ...}}``; a 5xx is a bug,
except 503 (database unavailable), which carries ``Retry-After``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from orchestrator.errors import OrchestratorError
from orchestrator.store.errors import StoreUnavailable

log = logging.getLogger("orchestrator.api")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
}


#: Seconds a client is told to wait before retrying a 503.
RETRY_AFTER_S = 1


def error_response(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> JSONResponse:
    """An answer in the documented error shape (503 carries ``Retry-After``)."""
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    body = {"error": {**(details or {}), "code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


class ApiError(HTTPException):
    """A refusal raised by the API layer itself (limits, guards) with its own code.

    An ``HTTPException``, so FastAPI lets it through unchanged even while it is
    reading the request body.
    """

    def __init__(
        self, status: int, code: str, message: str, fields: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(status, message)
        self.code = code
        self.message = message
        self.fields = fields

    def response(self) -> JSONResponse:
        return error_response(
            self.status_code,
            self.code,
            self.message,
            {"fields": self.fields} if self.fields else None,
        )


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] or parts
    return ".".join(parts)


def _allowed_methods(request: Request) -> list[str]:
    # Starlette's Allow names the methods of the first route matching the path
    # only; every method of the path is the truth (one route per method here).
    methods: set[str] = set()
    for route in request.app.router.routes:
        # A method no route has: every route whose path matches answers PARTIAL.
        match, _ = route.matches({**request.scope, "method": "_ALLOW_PROBE_"})
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


def install(app: FastAPI) -> None:
    """Map every exception to the error shape; FastAPI's ``{"detail": ...}`` never shows."""

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(OrchestratorError)
    async def _ours(_: Request, exc: OrchestratorError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(400, "invalid_json", "the request body is not valid JSON")
        fields = [{"field": _field(tuple(e["loc"])), "message": e["msg"]} for e in errors]
        return error_response(422, "invalid_request", "the request is invalid", {"fields": fields})

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        response = error_response(exc.status_code, code, message)
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        if exc.status_code == 405:
            response.headers["Allow"] = ", ".join(_allowed_methods(request))
        return response

    # The store decides what "unavailable" is (orchestrator.store.unavailable);
    # any other database error is a bug, answered below as one. An OSError that
    # escapes a handler is an outage too (a socket, a file), never the request's fault.
    @app.exception_handler(StoreUnavailable)
    @app.exception_handler(ConnectionError)
    @app.exception_handler(OSError)
    async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable: %s", exc)
        return error_response(503, "unavailable", "the database is unavailable; retry shortly")

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal error")
