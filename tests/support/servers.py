"""Real HTTP servers on loopback for tests.

``serve_app`` runs an ASGI app under uvicorn inside the test's own event loop,
bound to 127.0.0.1 on a free port: calls go through real sockets and real HTTP.
``free_port`` and ``wait_http`` help tests that start whole processes; they
are the harness's (:mod:`orchestrator.harness.processes`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

from orchestrator.harness.processes import free_port, run_blocking, wait_http_ok

__all__ = ["free_port", "serve_app", "wait_http"]


class _QuietServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test runner owns signals
        pass


@asynccontextmanager
async def serve_app(app: Any, port: int | None = None, **options: Any) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 and yield its base URL; stop it on exit.

    ``options`` go to :class:`uvicorn.Config` (e.g. the limits ``saga serve`` sets).
    """
    port = port or free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        **{"log_level": "warning", "lifespan": "on", **options},
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server stopped before it started")
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def wait_http(url: str, timeout_s: float = 30.0) -> None:
    """Block until ``url`` answers 200 (for processes started by a test)."""
    run_blocking(wait_http_ok(url, timeout_s=timeout_s, request_timeout_s=1.0))
