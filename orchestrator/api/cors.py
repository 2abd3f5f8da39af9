"""CORS: off unless ``SAGA_CORS_ORIGINS`` names the origins that may call the API."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from orchestrator.api.errors import error_response
from orchestrator.transport import protocol

#: Headers a browser client of the API may send: its key, a JSON body, a start's
#: idempotency key (the participant protocol's name) and a callback completion's token.
ALLOWED_HEADERS = [
    "Authorization",
    protocol.CONTENT_TYPE,
    protocol.IDEMPOTENCY_KEY,
    protocol.CALLBACK_TOKEN,
]


class JsonCORSMiddleware(CORSMiddleware):
    """Starlette's CORS middleware, refusing a preflight in the API's error shape."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        refused = error_response(
            response.status_code, "cors_refused", bytes(response.body).decode()
        )
        for name, value in response.headers.items():
            if name.lower().startswith("access-control-") or name.lower() == "vary":
                refused.headers[name] = value
        return refused


def install(app: FastAPI, origins: list[str]) -> None:
    """Allow browsers on ``origins`` to call the API; nothing when the list is empty."""
    if not origins:
        return
    app.add_middleware(
        JsonCORSMiddleware,
        allow_origins=origins,
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=ALLOWED_HEADERS,
        # Keys travel in a header, never in cookies: no credentials mode needed.
        allow_credentials=False,
        expose_headers=["Retry-After"],
        max_age=600,
    )
