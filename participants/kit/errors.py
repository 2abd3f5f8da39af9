"""Errors of a kit-built service, all answered as ``{"error": {"code", "message"}}``.

:class:`Rejected` is a business "no" (insufficient funds, out of stock): the
orchestrator does not retry it, and when a handler raises it the kit stores it
as the key's answer so a late duplicate hears the same "no". Everything else a
handler raises is a bug or a transient failure: nothing is stored, so a retry
with the same key gets a fresh chance.

The exception handlers installed by :func:`install_error_handlers` give every
answer, FastAPI's own 404/405/422 included, the same JSON shape.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from participants.kit.database import DatabaseBusy, is_transient

logger = logging.getLogger(__name__)

RETRY_AFTER_S = 1


class Rejected(Exception):
    """A business refusal: answered with ``status`` (a 4xx, 409 by default) and kept."""

    def __init__(self, code: str, message: str, *, status: int = 409, **details: Any) -> None:
        super().__init__(message)
        if not 400 <= status < 500 or status in (408, 429):
            raise ValueError(f"a rejection needs a non-retryable 4xx status, not {status}")
        self.code = code
        self.message = message
        self.status = status
        self.details = details

    def body(self) -> dict[str, Any]:
        """The JSON answer for this rejection."""
        return error_body(self.code, self.message, **self.details)


class Unavailable(Exception):
    """A transient failure: answered 503 with ``Retry-After`` so the caller retries."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def error_body(code: str, message: str, **details: Any) -> dict[str, Any]:
    """The kit's error shape: ``{"error": {"code": ..., "message": ..., **details}}``."""
    return {"error": {"code": code, "message": message, **details}}


def error_response(
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    **details: Any,
) -> JSONResponse:
    """A JSON error answer."""
    body = error_body(code, message, **details)
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def unavailable_response(code: str, message: str) -> JSONResponse:
    """A 503 the orchestrator classifies as transient and retries with the same key."""
    return error_response(503, code, message, headers={"Retry-After": str(RETRY_AFTER_S)})


def _http_code(status: int) -> str:
    codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request", 401: "unauthorized"}
    return codes.get(status, f"http_{status}")


def _describe(error: Any) -> dict[str, str]:
    location = ".".join(str(part) for part in error.get("loc", ()))
    return {"field": location, "message": str(error.get("msg", "invalid"))}


async def _on_rejected(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Rejected)
    return JSONResponse(exc.body(), status_code=exc.status)


async def _on_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Unavailable)
    return unavailable_response(exc.code, exc.message)


async def _on_http(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return error_response(exc.status_code, _http_code(exc.status_code), message, exc.headers)


async def _on_validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = [_describe(error) for error in exc.errors()]
    summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return error_response(422, "validation_error", summary or "invalid request", fields=fields)


async def _on_database(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DBAPIError)
    if is_transient(exc):
        logger.warning("transient database error on %s: %s", request.url.path, exc.orig)
        return unavailable_response("database_busy", "the database is busy; retry shortly")
    logger.error("database error on %s", request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "unexpected database error")


async def _on_connection_lost(request: Request, exc: Exception) -> JSONResponse:
    # A socket error outside the database driver's own wrapping (a pooled
    # connection reset, a refused reconnect while the database restarts): the
    # call may succeed later, so it is transient, not a bug with a traceback.
    logger.warning("connection error on %s: %r", request.url.path, exc)
    return unavailable_response("database_unavailable", "the database cannot be reached; retry")


async def _on_busy(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("%s: %s", request.url.path, exc)
    return unavailable_response("database_busy", "the database is busy; retry shortly")


async def _on_anything(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error on %s", request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "unexpected error; see the service log")


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` in the kit's JSON shape."""
    app.add_exception_handler(Rejected, _on_rejected)
    app.add_exception_handler(Unavailable, _on_unavailable)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(DBAPIError, _on_database)
    app.add_exception_handler(DatabaseBusy, _on_busy)
    app.add_exception_handler(ConnectionError, _on_connection_lost)
    app.add_exception_handler(Exception, _on_anything)
