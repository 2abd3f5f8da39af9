"""Request-scoped dependencies: the operations object, authentication, fault gate."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from orchestrator.errors import NotFound
from orchestrator.operations import Operations
from orchestrator.runtime import Runtime


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def operations(request: Request) -> Operations:
    ops: Operations = request.app.state.operations
    return ops


def caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    """Who is calling: ``key:<hash prefix>`` when keys are configured, else ``anonymous``.

    Keys are compared in constant time; several keys (comma-separated) allow rotation.
    """
    rt: Runtime = request.app.state.runtime
    configured = [k.strip() for k in (rt.settings.api_key or "").split(",") if k.strip()]
    if not configured:
        return "anonymous"
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and token:
        for key in configured:
            if hmac.compare_digest(token.encode(), key.encode()):
                return "key:" + hashlib.sha256(key.encode()).hexdigest()[:8]
    raise HTTPException(
        401,
        "a valid 'Authorization: Bearer <key>' header is required",
        headers={"WWW-Authenticate": "Bearer"},
    )


def faults_enabled(request: Request) -> None:
    rt: Runtime = request.app.state.runtime
    if not rt.settings.enable_faults:
        raise NotFound("fault injection is not enabled (SAGA_ENABLE_FAULTS)")


def saga_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound(f"unknown saga {raw!r}") from None


Ops = Annotated[Operations, Depends(operations)]
Rt = Annotated[Runtime, Depends(runtime)]
Caller = Annotated[str, Depends(caller)]
