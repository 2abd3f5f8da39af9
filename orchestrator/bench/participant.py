"""The benchmark participant: three endpoints, each one short PostgreSQL transaction.

Each call inserts its idempotency key (a repeated key answers the stored
answer) and updates a versioned row, like a real kit-built participant but with
nothing else in the way. The row is one of :data:`ROWS`, picked by the key, so
that concurrent sagas touch different rows as different orders would: one hot
row would queue every call behind the previous one's commit and measure that
lock instead of the saga. Run: ``python -m orchestrator.bench.participant DSN PORT``.

With ``BENCH_BROKER_URL`` and ``BENCH_QUEUE`` in its environment (a password
has no place on a command line), the same process also consumes the
endpoints' commands from that queue with the kit's
:class:`~participants.kit.amqp.CommandConsumer`: each command is a request to
this very app, in process, acknowledged only once its reply is published.
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response

from participants.kit.amqp import CommandConsumer
from participants.kit.metrics import KitMetrics

ROWS = 1024
#: Commands delivered and handled at once: as many as the HTTP connections the
#: orchestrator keeps to a participant, so that neither transport lets fewer calls
#: through than the other (the pool of 16 connections bounds both alike).
COMMANDS_AT_ONCE = 100

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS idempotency (key text PRIMARY KEY, answer jsonb NOT NULL);
CREATE TABLE IF NOT EXISTS counters
    (id int PRIMARY KEY, value bigint NOT NULL, version int NOT NULL);
INSERT INTO counters SELECT i, 0, 0 FROM generate_series(0, {ROWS - 1}) AS i
    ON CONFLICT DO NOTHING;
"""


async def _keep_session(_conn: Any) -> None:
    """Nothing to reset: the app sets no session state. The default reset is one more
    round trip, and one more transaction counted as a commit, for every call."""


def create_app(dsn: str, broker_url: str | None = None, queue: str | None = None) -> FastAPI:
    """The participant's app on database ``dsn`` (its tables are created at start); with
    ``broker_url`` and ``queue``, also consuming its commands from that queue."""
    pool: Any = None
    consumer: CommandConsumer | None = None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        nonlocal pool
        pool = await asyncpg.create_pool(dsn, min_size=4, max_size=16, reset=_keep_session)
        async with pool.acquire() as conn:
            await conn.execute(SCHEMA)
        if consumer is not None:
            consumer.start()
        try:
            yield
        finally:
            if consumer is not None:
                await consumer.stop()
            await pool.close()

    app = FastAPI(lifespan=lifespan)
    if broker_url and queue:
        consumer = CommandConsumer(
            app,
            broker_url,
            queue,
            KitMetrics(),
            prefetch=COMMANDS_AT_ONCE,
            concurrency=COMMANDS_AT_ONCE,
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/step/{n}")
    async def step(n: int, request: Request) -> Response:
        key = request.headers.get("Idempotency-Key") or ""
        answer = json.dumps({"step": n, "key": key})
        async with pool.acquire() as conn, conn.transaction():
            stored = await conn.fetchval(
                "INSERT INTO idempotency VALUES ($1, $2::jsonb) ON CONFLICT (key) DO NOTHING "
                "RETURNING answer",
                key,
                answer,
            )
            if stored is None:
                answer = await conn.fetchval("SELECT answer FROM idempotency WHERE key = $1", key)
            else:
                await conn.execute(
                    "UPDATE counters SET value = value + 1, version = version + 1 WHERE id = $1",
                    zlib.crc32(key.encode()) % ROWS,
                )
        return Response(answer, media_type="application/json")

    return app


if __name__ == "__main__":
    app = create_app(sys.argv[1], os.environ.get("BENCH_BROKER_URL"), os.environ.get("BENCH_QUEUE"))
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
