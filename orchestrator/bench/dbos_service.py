"""The benchmark saga as a DBOS Transact workflow, served over HTTP.

``POST /sagas`` runs one workflow of three steps, each a call to the benchmark
participant, and answers when it has finished: DBOS checkpoints the workflow
and every step in its system database. Needs the ``bench`` extra. Run:
``python -m orchestrator.bench.dbos_service SYSTEM_DSN PARTICIPANT_URL PORT``.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from dbos import DBOS
from fastapi import FastAPI
from fastapi.responses import Response

from orchestrator.bench.modes import PARTICIPANT_CONNECTIONS, http_client


def create_app(system_dsn: str, participant_url: str) -> FastAPI:
    """The service: DBOS launched on ``system_dsn`` for the app's lifetime."""
    http = http_client(participant_url, PARTICIPANT_CONNECTIONS)

    async def call(n: int, key: str) -> None:
        response = await http.post(f"/step/{n}", headers={"Idempotency-Key": f"{key}:{n}"})
        response.raise_for_status()

    # Registered by calls, not decorator syntax, so typing holds without DBOS installed.
    step: Any = DBOS.step()(call)

    async def saga(key: str) -> None:
        for n in (1, 2, 3):
            await step(n, key)

    workflow: Any = DBOS.workflow()(saga)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        DBOS(
            config={
                "name": "saga-bench",
                "system_database_url": system_dsn,
                "log_level": "WARNING",
            }
        )
        DBOS.launch()
        yield
        DBOS.destroy()
        await http.aclose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/sagas")
    async def run_saga() -> Response:
        await workflow(uuid.uuid4().hex)
        return Response(b'{"status":"completed"}', media_type="application/json")

    return app


if __name__ == "__main__":
    uvicorn.run(
        create_app(sys.argv[1], sys.argv[2]),
        host="127.0.0.1",
        port=int(sys.argv[3]),
        log_level="warning",
    )
