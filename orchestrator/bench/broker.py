"""The broker mode's queue: one of the run's own on a RabbitMQ node, deleted at the end.

The node may be shared (by default the machine's, at 127.0.0.1:5672), so the
benchmark touches nothing on it but one queue named after the run: declared
before the participant starts consuming it, deleted once every process that
used it has stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import aiormq

from orchestrator.settings import redact_url

DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672/%2F"
#: How long the broker has to answer before the mode is skipped.
CONNECT_TIMEOUT_S = 3.0


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Without logger ``name``'s lines: the reason a broker is unreachable is printed once,
    as the skip's, not also as aiormq's error line on the terminal."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def broker_base(url: str) -> str:
    """The broker part of ``url``: any ``?queue=`` or other query dropped, vhost kept."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", "", ""))


def queue_name(run_id: str) -> str:
    """The run's command queue: unique, and telling whose it is on a shared node."""
    return f"saga.bench.{run_id}"


class BenchQueue:
    """The run's command queue on the broker at ``url``.

    Each use opens a connection of its own and closes it: none is left idle for
    the length of the run, to be dropped by the broker or a heartbeat unseen.
    """

    def __init__(self, url: str, name: str) -> None:
        self.url = broker_base(url)
        self.name = name
        self.declared = False

    @property
    def address(self) -> str:
        """The participant's address as ``SAGA_PARTICIPANTS`` takes it."""
        return f"{self.url}?queue={self.name}"

    def shown(self) -> str:
        """The broker's URL as it may be printed: the password masked."""
        return redact_url(self.url)

    async def declare(self) -> str | None:
        """Declare the queue; None, or why the broker mode cannot run."""
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                with _quiet("aiormq.connection"):
                    connection = await aio_pika.connect(self.url, timeout=CONNECT_TIMEOUT_S)
        except (TimeoutError, OSError, aiormq.exceptions.AMQPError) as exc:
            detail = redact_url(str(exc)) if str(exc) else type(exc).__name__
            return f"cannot connect to the broker at {self.shown()} ({detail})"
        async with connection:
            try:
                channel = await connection.channel()
                # As the consumer declares it (durable, no arguments): a redeclaration that
                # differs in anything would be refused.
                await channel.declare_queue(self.name, durable=True)
            except (aiormq.exceptions.AMQPError, aio_pika.exceptions.AMQPException) as exc:
                return f"the broker at {self.shown()} refused the queue {self.name!r} ({exc!r})"
        self.declared = True
        return None

    async def wait_consumed(self, timeout_s: float = 30.0) -> bool:
        """Until the queue has a consumer (the participant's); False if none came in time."""
        deadline = time.monotonic() + timeout_s
        async with await aio_pika.connect(self.url, timeout=CONNECT_TIMEOUT_S) as connection:
            channel = await connection.channel()
            while time.monotonic() < deadline:
                queue = await channel.declare_queue(self.name, passive=True)
                if queue.declaration_result.consumer_count:
                    return True
                await asyncio.sleep(0.1)
        return False

    async def delete(self) -> None:
        """Delete the queue if it was declared (commands left in it go with it)."""
        if not self.declared:
            return
        async with await aio_pika.connect(self.url, timeout=CONNECT_TIMEOUT_S) as connection:
            channel = await connection.channel()
            await channel.queue_delete(self.name)
        self.declared = False
