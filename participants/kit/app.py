"""``create_participant_app``: a FastAPI app that is a well-behaved saga participant.

The single place where a kit-built service is wired together: database,
metrics, fault board, the idempotent endpoints declared on an
:class:`~participants.kit.effects.EffectRouter`, the service's own routers, and
the kit's endpoints (``/healthz``, ``/readyz``, ``/metrics``, ``/_ledger``,
``/_callbacks`` when an action completes by callback, and with faults enabled
``/_faults`` and ``/_reset``).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from participants.kit.amqp import CommandConsumer
from participants.kit.callbacks import Completer, callbacks_router
from participants.kit.database import Database
from participants.kit.demo import DemoData, reset_router
from participants.kit.effects import ActionSpec, CompensationSpec, EffectRouter
from participants.kit.errors import error_body, install_error_handlers
from participants.kit.faults import FaultBoard, faults_router
from participants.kit.idempotency import EffectRunner
from participants.kit.ledger import ledger_router
from participants.kit.metrics import KitMetrics, RequestMetricsMiddleware, metrics_router
from participants.kit.migrate import current_is_head
from participants.kit.settings import ParticipantSettings, resolve_database_url

logger = logging.getLogger(__name__)

_SAGA_ANSWERS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Missing or malformed Idempotency-Key"},
    409: {
        "description": "Business rejection, key reused with another body, or refused "
        "because the compensation came first"
    },
    503: {"description": "Transient: retry with the same key (see Retry-After)"},
}


@dataclass(frozen=True)
class Kit:
    """What the kit keeps for one app (``app.state.kit``)."""

    service: str
    settings: ParticipantSettings
    db: Database
    metrics: KitMetrics
    faults: FaultBoard
    alembic_ini: Path | None = None


def get_kit(request: Request) -> Kit:
    """FastAPI dependency: the kit of the app serving ``request``."""
    return cast(Kit, request.app.state.kit)


def get_database(request: Request) -> Database:
    """FastAPI dependency: the service's database."""
    return get_kit(request).db


KitDep = Annotated[Kit, Depends(get_kit)]
DatabaseDep = Annotated[Database, Depends(get_database)]


def create_participant_app(
    service: str,
    settings: ParticipantSettings | None = None,
    *,
    effects: EffectRouter,
    routers: Sequence[APIRouter] = (),
    demo: DemoData | None = None,
    title: str | None = None,
    alembic_ini: Path | None = None,
) -> FastAPI:
    """Build the app of participant ``service``.

    ``service`` also names its section of ``alembic_ini`` (default: the
    repository's ``alembic.ini``), which ``/readyz`` uses to compare the
    database's revision with the head.
    """
    settings = settings or ParticipantSettings()
    db = Database.connect(resolve_database_url(service, settings), settings)
    kit = Kit(service, settings, db, KitMetrics(), FaultBoard(), alembic_ini)
    completer = Completer(db, settings, kit.metrics) if effects.completes_by_callback else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.enable_faults:
            logger.warning(
                "!!! FAULT INJECTION ENABLED in %s: /_faults can make it fail on purpose and "
                "/_reset wipes its database. Never enable this in production. !!!",
                service,
            )
        try:
            async with _background(completer, app.state.kit_consumer):
                yield
        finally:
            await db.dispose()

    app = FastAPI(title=title or f"{service} (saga participant)", lifespan=lifespan)
    app.state.kit = kit
    #: Serves the effect endpoints to broker commands when a broker is configured.
    app.state.kit_consumer = _consumer(app, service, settings, kit.metrics)
    install_error_handlers(app)
    app.add_middleware(RequestMetricsMiddleware, metrics=kit.metrics)

    runner = EffectRunner(db, kit.metrics, kit.faults, settings.optimistic_attempts, completer)
    for action in effects.actions:
        _mount_action(app, runner, action)
    for compensation in effects.compensations:
        _mount_compensation(app, runner, compensation)
    for router in routers:
        app.include_router(router)
    app.include_router(_health_router(kit))
    app.include_router(metrics_router(kit.metrics))
    app.include_router(ledger_router(db))
    if completer is not None:
        app.include_router(callbacks_router(db))
    if settings.enable_faults:
        app.include_router(faults_router(kit.faults))
        if demo is not None:
            app.include_router(reset_router(db, demo, completions=completer is not None))
    return app


@asynccontextmanager
async def _background(
    completer: Completer | None, consumer: CommandConsumer | None
) -> AsyncIterator[None]:
    """What runs beside the app: owed completions being sent, broker commands consumed."""
    if completer is not None:
        completer.start()  # resumes what an earlier run still owed
    if consumer is not None:
        consumer.start()
    try:
        yield
    finally:
        if consumer is not None:
            await consumer.stop()
        if completer is not None:
            await completer.stop()


def _consumer(
    app: FastAPI, service: str, settings: ParticipantSettings, metrics: KitMetrics
) -> CommandConsumer | None:
    """The broker consumer serving ``app``'s endpoints, if a broker is configured."""
    if not settings.amqp_url:
        return None
    return CommandConsumer(
        app,
        settings.amqp_url,
        settings.amqp_queue or service,
        metrics,
        prefetch=settings.amqp_prefetch,
        concurrency=settings.amqp_concurrency,
    )


def _mount_action(app: FastAPI, runner: EffectRunner, spec: ActionSpec) -> None:
    async def endpoint(request: Request, body: Any) -> JSONResponse:
        return await runner.run_action(spec, request, body)

    # FastAPI reads the body model from the signature; the model is only known now.
    cast(Any, endpoint).__signature__ = inspect.Signature(
        [
            inspect.Parameter(
                "request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request
            ),
            inspect.Parameter(
                "body", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=spec.model
            ),
        ]
    )
    app.add_api_route(
        spec.path,
        endpoint,
        methods=["POST"],
        status_code=spec.status_code,
        name=spec.handler.__name__,
        summary=spec.summary,
        description=f"Idempotent action. {inspect.getdoc(spec.handler) or ''}",
        responses=_SAGA_ANSWERS,
    )


def _mount_compensation(app: FastAPI, runner: EffectRunner, spec: CompensationSpec) -> None:
    async def endpoint(request: Request) -> JSONResponse:
        return await runner.run_compensation(spec, request)

    app.add_api_route(
        spec.path,
        endpoint,
        methods=["POST"],
        name=spec.handler.__name__,
        summary=spec.summary,
        description=f"Idempotent compensation of {spec.undoes}. "
        f"{inspect.getdoc(spec.handler) or ''}",
        responses=_SAGA_ANSWERS,
    )


def _health_router(kit: Kit) -> APIRouter:
    router = APIRouter(tags=["kit"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": kit.service}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        try:
            ready = await current_is_head(kit.db, kit.service, ini=kit.alembic_ini)
        except Exception as exc:  # any failure to look means "not ready", never a 500
            logger.warning("%s not ready: %s", kit.service, exc)
            return JSONResponse(error_body("not_ready", str(exc)), status_code=503)
        if not ready:
            body = error_body("migrations_pending", "the database is not at the head revision")
            return JSONResponse(body, status_code=503)
        return JSONResponse({"status": "ready", "service": kit.service})

    return router
