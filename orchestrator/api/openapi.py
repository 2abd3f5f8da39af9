"""The OpenAPI document, made to describe the errors the API really answers.

FastAPI documents a 422 with its own ``{"detail": [...]}`` shape, which this API
never sends (every error is ``{"error": {"code", "message", ...}}``). Clients
and fuzzers check answers against this document, so it must say the truth:
each operation gets the error shape for 422, for the statuses it can answer,
and as its ``default``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from orchestrator.definitions import SagaDefinition
from orchestrator.transport import protocol

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "snake_case, stable"},
                "message": {"type": "string", "description": "for a person"},
                "fields": {
                    "type": "array",
                    "description": "the fields that are wrong, when the request is invalid",
                    "items": {
                        "type": "object",
                        "required": ["field", "message"],
                        "properties": {
                            "field": {"type": "string"},
                            "message": {"type": "string"},
                        },
                    },
                },
            },
        }
    },
}

_ERROR_REF = {"$ref": "#/components/schemas/Error"}

_DESCRIPTIONS = {
    "400": "Malformed request (e.g. a body that is not JSON)",
    "401": "Missing or wrong API key (when SAGA_API_KEY is set)",
    "403": "Wrong callback token",
    "404": "Unknown resource",
    "409": "The current state forbids the request",
    "413": "Body or input over the configured limit",
    "422": "Invalid request; `fields` names what is wrong",
    "503": "Database unavailable or busy; retry after `Retry-After` seconds",
    "default": "Error",
}


def _error_response(status: str) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": _DESCRIPTIONS.get(status, "Error"),
        "content": {"application/json": {"schema": _ERROR_REF}},
    }
    if status == "503":
        answer["headers"] = {
            "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}
        }
    return answer


def _statuses(path: str, operation: dict[str, Any]) -> list[str]:
    statuses = ["400", "413", "422", "503", "default"]
    if operation.get("security"):
        statuses.append("401")
    if path.startswith("/v1/"):
        statuses += ["404", "409"]
    if path == protocol.CALLBACK_PATH:
        statuses.append("403")
    return statuses


#: Endpoints that take their body as plain JSON (to name every bad field in their
#: own words) but whose body has a model worth documenting.
_BODIES: dict[tuple[str, str], type[BaseModel]] = {
    ("/v1/definitions", "post"): SagaDefinition,
}


_ORDER_DEFINITION: dict[str, Any] = {
    "name": "order",
    "deadline_s": 300,
    "steps": [
        {
            "name": "reserve_stock",
            "participant": "inventory",
            "action": {
                "path": "/reservations",
                "body": {"sku": "$.input.sku", "qty": "$.input.qty"},
            },
            "compensation": {"path": "/reservations/cancel"},
            "retry": {"max_attempts": 5, "initial_backoff_ms": 50, "max_backoff_ms": 2000},
            "timeout_ms": 2000,
        },
        {
            "name": "charge",
            "participant": "payments",
            "kind": "pivot",
            "action": {
                "path": "/charges",
                "body": {"account": "$.input.account", "amount": "$.input.amount"},
            },
        },
        {
            "name": "ship",
            "participant": "shipping",
            "kind": "retriable",
            "action": {
                "path": "/shipments",
                "body": {"reservation": "$.results.reserve_stock.reservation_id"},
            },
        },
    ],
}

#: Request examples (the contract's own, from API.md): for people reading the
#: document, and the first cases a fuzzer tries.
_EXAMPLES: dict[tuple[str, str], Any] = {
    ("/v1/definitions", "post"): _ORDER_DEFINITION,
    ("/v1/sagas", "post"): {
        "definition": "order",
        "input": {"sku": "A1", "qty": 2, "account": "alice", "amount": 30},
    },
    ("/v1/sagas/retry", "post"): {"status": "failed", "definition": "order", "step": "charge"},
    (protocol.CALLBACK_PATH, "post"): {
        "outcome": "succeeded",
        "result": {"approved_by": "kim"},
    },
    ("/v1/faults", "post"): {
        "participant": "payments",
        "step": "charge",
        "phase": "action",
        "mode": "error",
        "status": 503,
        "probability": 0.3,
        "count": 10,
        "seed": 42,
    },
}


#: Creations that answer 200 when repeated (the contract's idempotency).
_REPEATABLE = {
    ("/v1/definitions", "post"): "Identical to the latest version: nothing new registered",
    ("/v1/sagas", "post"): "Same Idempotency-Key and body: the saga first created",
}


def _document_body(
    schema: dict[str, Any], operation: dict[str, Any], model: type[BaseModel]
) -> None:
    body = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema["components"]["schemas"].update(body.pop("$defs", {}))
    schema["components"]["schemas"][model.__name__] = body
    operation["requestBody"] = {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
        },
    }


def document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of ``app`` with the error shape in place of FastAPI's."""
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components["Error"] = ERROR_SCHEMA
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if (path, method) in _BODIES:
                _document_body(schema, operation, _BODIES[(path, method)])
            if (path, method) in _EXAMPLES:
                body = operation["requestBody"]["content"]["application/json"]
                body["example"] = _EXAMPLES[(path, method)]
            responses = operation.setdefault("responses", {})
            if (path, method) in _REPEATABLE and "201" in responses:
                responses["200"] = {
                    **responses["201"],
                    "description": _REPEATABLE[(path, method)],
                }
            for status in _statuses(path, operation):
                responses[status] = _error_response(status)
    return schema


def install(app: FastAPI) -> None:
    """Serve :func:`document` at ``/openapi.json`` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
