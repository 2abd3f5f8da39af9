"""Request-scoped dependencies: the operations object, authentication, fault gate."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from orchestrator.errors import NotFound
from orchestrator.operations import Operations
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings


async def runtime(request: Request) -> Runtime:
    """FastAPI dependency: the process's :class:`Runtime`.

    Dependencies are coroutines on purpose: FastAPI runs a plain function in
    a thread pool, a thread hand-off per dependency per request.
    """
    rt: Runtime = request.app.state.runtime
    return rt


async def operations(request: Request) -> Operations:
    """FastAPI dependency: the use cases behind the API."""
    ops: Operations = request.app.state.operations
    return ops


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def authenticate(settings: Settings, token: str | None) -> str:
    """Who is calling: ``key:<hash prefix>`` when keys are configured, else ``anonymous``.

    Raises 401 unless ``token`` (the credentials of ``Authorization: Bearer``)
    is one of the keys. Every key is compared, in constant time, against the
    digest of the token, so neither the position of the matching key nor the
    length of any key shows in the time taken.
    """
    configured = settings.api_keys()
    if not configured:
        return "anonymous"
    presented = _digest(token or "")
    matched: str | None = None
    for key in configured:
        if hmac.compare_digest(presented, _digest(key)) and token:
            matched = matched or key
    if matched is None:
        raise HTTPException(
            401,
            "a valid 'Authorization: Bearer <key>' header is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    # A short, stable name for the key in the saga history; never the key itself.
    return "key:" + hashlib.sha256(matched.encode()).hexdigest()[:8]


# Declares the scheme in the OpenAPI document; the check itself is ours (authenticate).
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="One of the keys in SAGA_API_KEY (required when it is set).",
)


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """FastAPI dependency: the caller of a ``/v1`` request (see :func:`authenticate`)."""
    rt: Runtime = request.app.state.runtime
    return authenticate(rt.settings, credentials.credentials if credentials else None)


async def metrics_caller(request: Request) -> None:
    """``/metrics`` is open unless ``SAGA_METRICS_REQUIRE_KEY`` puts it behind the key."""
    rt: Runtime = request.app.state.runtime
    if rt.settings.metrics_require_key:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        authenticate(rt.settings, token.strip() if scheme.lower() == "bearer" else None)


async def faults_enabled(request: Request) -> None:
    """404 for every fault endpoint unless ``SAGA_ENABLE_FAULTS`` is on."""
    rt: Runtime = request.app.state.runtime
    if not rt.settings.enable_faults:
        raise NotFound("fault injection is not enabled (SAGA_ENABLE_FAULTS)")


def saga_id(raw: str) -> uuid.UUID:
    """A saga id from a path; anything that is not a UUID names no saga (404)."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound(f"unknown saga {raw!r}") from None


Ops = Annotated[Operations, Depends(operations)]
Rt = Annotated[Runtime, Depends(runtime)]
Caller = Annotated[str, Depends(caller)]
