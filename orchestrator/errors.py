"""The orchestrator's error hierarchy; the API maps each to one HTTP status.

OrchestratorError               500 (a bug if it ever escapes)
 ├── NotFound                   404  unknown saga, definition, fault rule
 ├── InvalidRequest             422  input that fails validation (names the field)
 ├── Conflict                   409  a request the current state forbids
 ├── PayloadTooLarge            413
 └── Unavailable                503  database down or pool exhausted
"""

from __future__ import annotations

from typing import Any


class OrchestratorError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(OrchestratorError):
    status = 404
    code = "not_found"


class InvalidRequest(OrchestratorError):
    status = 422
    code = "invalid_request"

    def __init__(self, message: str, fields: list[dict[str, str]] | None = None, **details: Any):
        super().__init__(message, **details)
        if fields:
            self.details["fields"] = fields


class Forbidden(OrchestratorError):
    status = 403
    code = "forbidden"


class Conflict(OrchestratorError):
    status = 409
    code = "conflict"


class PayloadTooLarge(OrchestratorError):
    status = 413
    code = "payload_too_large"


class Unavailable(OrchestratorError):
    status = 503
    code = "unavailable"
