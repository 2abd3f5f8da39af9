"""Serving a kit-built service's effect endpoints to commands from a broker queue.

The orchestrator may reach a participant through RabbitMQ instead of HTTP: a
command message carries what an HTTP call carries (``message_id`` = the
``Idempotency-Key``, ``type`` = the endpoint's path, the ``X-Saga-*`` values
as headers, the JSON body) and is answered by a reply to its ``reply_to``
queue with the same ``correlation_id``, a ``status`` header and the JSON
answer.

:class:`CommandConsumer` turns each command into a request to the service's
own app, in process (the same routes, validation, idempotency, in-service
faults and metrics as HTTP: handlers cannot tell), publishes the answer and
only then acknowledges the command. A consumer that dies anywhere before the
acknowledgement leaves the command to be delivered again, and the
redelivered command replays the answer stored with its key: the effect
happened once, whichever delivery got there first. Callback steps complete
over HTTP, as they do when called over HTTP (the command carries the
orchestrator's callback URL).

The consumer connects in the background and keeps trying: a service starts
(and answers HTTP) while its broker is still down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import aiormq
import httpx
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from starlette.types import ASGIApp

from participants.kit.keys import IDEMPOTENCY_HEADER
from participants.kit.metrics import KitMetrics
from participants.kit.settings import masked_url

logger = logging.getLogger(__name__)

#: The reply header carrying the answer's status (an integer with HTTP's meaning).
STATUS_HEADER = "status"
#: Command headers passed on to the app as HTTP headers (the protocol's, nothing else).
_PASSED_HEADERS = (
    "X-Saga-Id",
    "X-Saga-Step",
    "X-Saga-Attempt",
    "X-Saga-Callback-Url",
    "X-Saga-Callback-Token",
    "traceparent",
)


def broker_url(url: str) -> str:
    """The broker part of an address that may also name a queue (``?queue=`` is dropped)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", "", ""))


class CommandConsumer:
    """Consumes ``queue`` on the broker at ``url`` and answers each command through ``app``."""

    def __init__(
        self,
        app: ASGIApp,
        url: str,
        queue: str,
        metrics: KitMetrics,
        *,
        prefetch: int = 32,
        concurrency: int = 16,
    ) -> None:
        self.url = broker_url(url)
        self.queue = queue
        self.metrics = metrics
        self.prefetch = prefetch
        self._slots = asyncio.Semaphore(concurrency)
        self._app = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://amqp.local", timeout=None
        )
        self._connection: AbstractRobustConnection | None = None
        self._runner: asyncio.Task[None] | None = None
        self._handling: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self.connected = asyncio.Event()

    def start(self) -> None:
        """Connect and consume in the background (retrying until the broker answers)."""
        self._runner = asyncio.create_task(self._run(), name=f"consume {self.queue}")

    async def _run(self) -> None:
        delay = 0.2
        while not self._stopping:
            try:
                self._connection = await aio_pika.connect_robust(self.url, timeout=5)
                break
            except (OSError, aiormq.exceptions.AMQPError, TimeoutError) as exc:
                logger.warning(
                    "broker at %s not reachable (%s); retrying in %.1fs",
                    masked_url(self.url),
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        if self._connection is None:
            return
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self.prefetch)
        queue = await channel.declare_queue(self.queue, durable=True)
        await queue.consume(self._on_command)
        self.connected.set()
        logger.info("consuming commands from %s on %s", self.queue, masked_url(self.url))

    async def _on_command(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handling.add(task)
        try:
            async with self._slots:
                status, body = await self._answer(message)
                if message.reply_to:
                    await message.channel.basic_publish(
                        body,
                        routing_key=message.reply_to,
                        properties=aiormq.spec.Basic.Properties(
                            content_type="application/json",
                            correlation_id=message.correlation_id,
                            headers={STATUS_HEADER: status},
                        ),
                    )
                # Only now: a death before this line leaves the command to be redelivered,
                # and the redelivery replays the answer stored with its key.
                await message.ack()
                outcome = "redelivered" if message.redelivered else "answered"
                self.metrics.commands.labels(self.queue, outcome).inc()
        except (aiormq.exceptions.AMQPError, aio_pika.exceptions.AMQPException, OSError) as exc:
            # The channel went away: the broker redelivers the unacknowledged command.
            logger.warning("command %s not acknowledged: %r", message.message_id, exc)
        finally:
            if task is not None:
                self._handling.discard(task)

    async def _answer(self, message: AbstractIncomingMessage) -> tuple[int, bytes]:
        """The app's answer to the command, as ``(status, body)``."""
        path = message.type or ""
        if not path.startswith("/"):
            return 400, _error("missing_type", "the command's type must be the endpoint's path")
        headers = _http_headers(message.headers or {})
        if message.message_id:
            headers[IDEMPOTENCY_HEADER] = message.message_id
        response = await self._app.post(path, content=message.body, headers=headers)
        return response.status_code, response.content

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop taking commands, let those being handled finish, close the connection."""
        self._stopping = True
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
        if self._handling:
            await asyncio.wait(list(self._handling), timeout=grace_s)
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
        await self._app.aclose()


def _http_headers(headers: Mapping[str, Any]) -> dict[str, str]:
    passed = {name.lower(): name for name in _PASSED_HEADERS}
    sent = {"Content-Type": "application/json"}
    for name, value in headers.items():
        if name.lower() in passed and value is not None:
            text = value.decode() if isinstance(value, bytes) else str(value)
            sent[passed[name.lower()]] = text
    return sent


def _error(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()
