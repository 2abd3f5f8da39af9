"""The FastAPI application: ``create_app(settings)`` wires everything for one process."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from orchestrator.api import (
    callbacks,
    cors,
    definitions,
    errors,
    faults,
    openapi,
    ops,
    redact,
    sagas,
)
from orchestrator.api.deps import caller
from orchestrator.api.limits import BodyLimit, Deadline
from orchestrator.api.ui import pages as ui_pages
from orchestrator.api.ui.security import LoginRequired
from orchestrator.operations import Operations
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings

log = logging.getLogger("orchestrator.api")


def create_app(settings: Settings | None = None, *, role: str = "all") -> FastAPI:
    """The orchestrator's process: ``all`` (API and worker), ``api`` or ``worker``.

    A ``worker`` serves only /healthz, /readyz and /metrics.
    """
    if role not in ("all", "api", "worker"):
        raise ValueError(f"unknown role {role!r}")
    settings = settings or Settings()
    runtime = Runtime.build(settings, with_worker=role != "api")
    secret_filter = redact.SecretFilter(redact.secrets_of(settings))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        filtered = redact.install(secret_filter)
        if not settings.api_keys() and role != "worker":
            log.warning(
                "SAGA_API_KEY is not set: anyone who can reach this port can start, "
                "cancel and retry sagas"
            )
        try:
            await runtime.start()
            yield
        finally:
            await runtime.stop()
            redact.remove(secret_filter, filtered)

    app = FastAPI(
        title="saga-orchestrator",
        version="1",
        description="Durable sagas across microservices: compensations, exactly-once effects.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.operations = Operations(runtime)
    errors.install(app)
    if role != "worker":
        authenticated = [Depends(caller)]
        app.include_router(definitions.router, dependencies=authenticated)
        app.include_router(sagas.router, dependencies=authenticated)
        # Switched off, the fault endpoints answer 404 and are not in the document.
        app.include_router(
            faults.router, dependencies=authenticated, include_in_schema=settings.enable_faults
        )
        app.include_router(ops.v1, dependencies=authenticated)
        app.include_router(callbacks.router)  # authenticated by each step's token
        app.include_router(ui_pages.router)  # authenticated by its own cookie (api/ui/security)
        app.add_exception_handler(LoginRequired, ui_pages.login_required)
    app.include_router(ops.router)
    openapi.install(app)
    # Added innermost first: CORS answers preflights before anything else runs,
    # and the body limit applies before the deadline starts waiting on the body.
    app.add_middleware(Deadline, seconds=settings.request_timeout_s)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    cors.install(app, settings.cors_origins)
    return app
