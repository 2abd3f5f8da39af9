"""Real HTTP servers on loopback for tests.

``serve_app`` runs an ASGI app under uvicorn inside the test's own event loop,
bound to 127.0.0.1 on a free port: calls go through real sockets and real HTTP.
``free_port`` and ``wait_http`` help tests that start whole processes.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class _QuietServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test runner owns signals
        pass


@asynccontextmanager
async def serve_app(app: Any, port: int | None = None) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 and yield its base URL; stop it on exit."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
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
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer 200 within {timeout_s}s: {last}")
