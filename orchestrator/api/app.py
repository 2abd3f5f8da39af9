"""The FastAPI application: ``create_app(settings)`` wires everything for one process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from orchestrator.api import callbacks, definitions, errors, faults, ops, sagas
from orchestrator.api.deps import caller
from orchestrator.api.limits import BodyLimit
from orchestrator.operations import Operations
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings


def create_app(settings: Settings | None = None, *, role: str = "all") -> FastAPI:
    """The orchestrator's process: ``all`` (API and worker), ``api`` or ``worker``.

    A ``worker`` serves only /healthz, /readyz and /metrics.
    """
    if role not in ("all", "api", "worker"):
        raise ValueError(f"unknown role {role!r}")
    settings = settings or Settings()
    runtime = Runtime.build(settings, with_worker=role != "api")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

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
        app.include_router(faults.router, dependencies=authenticated)
        app.include_router(ops.v1, dependencies=authenticated)
        app.include_router(callbacks.router)  # authenticated by each step's token
    app.include_router(ops.router)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app
