"""The broker's own witness: every command and reply, from RabbitMQ's firehose.

What the HTTP relays of :mod:`orchestrator.check.wire` see for HTTP calls, the
broker sees for commands: with tracing on, it copies every message published
to ``amq.rabbitmq.trace``, with its routing key and properties. A durable
queue of the campaign's own collects the copies (it survives a broker crash
with what it holds), so the campaign knows, without asking the orchestrator:

- every command's ``message_id`` (the idempotency key), saga, step and
  attempt: the proof that all retries of a call carried the same key;
- which commands of a worker have no reply yet (its calls in flight, what an
  aimed kill waits for and the quiet phase waits out);
- which commands were answered with which status.

A command is attributed to a worker by its ``reply_to`` queue, named after
the publishing process (:func:`~orchestrator.transport.amqp.reply_queue_name`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from orchestrator.check.evidence import WireCall
from orchestrator.harness.rabbitmq import RabbitNode
from orchestrator.transport.amqp import STATUS_HEADER, replying_pid

log = logging.getLogger(__name__)

#: What a broker command is called on the wire (an HTTP call's method is ``POST``).
COMMAND = "COMMAND"
TRACE_QUEUE = "saga-check.firehose"
#: A command unanswered for longer than any attempt may last is no longer in flight.
_IN_FLIGHT_S = 30.0


@dataclass
class _Command:
    worker: str
    participant: str
    path: str
    key: str | None
    saga_id: str | None
    step: str | None
    attempt: int | None
    at: float


class BrokerTap:
    """Follows the firehose of ``node``; ``queues`` maps each command queue to its participant.

    ``worker_of`` names the worker process with a pid (None: not a worker).
    """

    def __init__(
        self,
        node: RabbitNode,
        queues: dict[str, str],
        worker_of: Callable[[int], str | None],
    ) -> None:
        self.node = node
        self.queues = queues
        self.worker_of = worker_of
        self.answered: list[WireCall] = []
        #: Commands each worker has published so far.
        self.sent: Counter[str] = Counter()
        self._pending: dict[str, _Command] = {}
        self._connection: AbstractConnection | None = None

    async def open(self) -> None:
        """Turn tracing on and start following it."""
        await asyncio.to_thread(self.node.trace_on)
        await self._follow()

    async def _follow(self, timeout_s: float = 60.0) -> None:
        # A connection of our own each time, not aio-pika's restored one: a restore that
        # lands while the node is still recovering its queues can leave no consumer.
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                connection = await aio_pika.connect(self.node.url(), timeout=10)
                channel = await connection.channel()
                queue = await channel.declare_queue(TRACE_QUEUE, durable=True)
                await queue.bind("amq.rabbitmq.trace", "publish.#")
                await queue.consume(self._on_trace, no_ack=True)
            except (OSError, aiormq.exceptions.AMQPError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
                continue
            self._connection = connection
            return

    async def after_restart(self) -> None:
        """Follow the restarted node: trace again (a restart turns it off), consume again.

        What the durable trace queue held survives the crash; commands published
        between the start and the ``trace_on`` are not seen.
        """
        await asyncio.to_thread(self.node.trace_on)
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
        await self._follow()

    async def _on_trace(self, message: AbstractIncomingMessage) -> None:
        headers: dict[str, Any] = dict(message.headers or {})
        routed = [str(k) for k in headers.get("routing_keys") or []]
        properties: dict[str, Any] = dict(headers.get("properties") or {})
        correlation_id = str(properties.get("correlation_id") or "")
        if not routed or not correlation_id:
            return
        participant = self.queues.get(routed[0])
        if participant is not None:
            self._command(participant, properties, correlation_id)
        elif correlation_id in self._pending:
            self._reply(properties, correlation_id)

    def _command(self, participant: str, properties: dict[str, Any], correlation_id: str) -> None:
        pid = replying_pid(str(properties.get("reply_to") or ""))
        worker = (self.worker_of(pid) if pid is not None else None) or "unknown"
        sent: dict[str, Any] = dict(properties.get("headers") or {})
        attempt = str(sent.get("X-Saga-Attempt", ""))
        self._pending[correlation_id] = _Command(
            worker=worker,
            participant=participant,
            path=str(properties.get("type") or ""),
            key=_text(properties.get("message_id")),
            saga_id=_text(sent.get("X-Saga-Id")),
            step=_text(sent.get("X-Saga-Step")),
            attempt=int(attempt) if attempt.isdigit() else None,
            at=time.monotonic(),
        )
        self.sent[worker] += 1

    def _reply(self, properties: dict[str, Any], correlation_id: str) -> None:
        command = self._pending.pop(correlation_id)
        raw = dict(properties.get("headers") or {}).get(STATUS_HEADER)
        status = raw if isinstance(raw, int) else int(str(raw)) if str(raw).isdigit() else None
        self.answered.append(_wire_call(command, status))

    @property
    def calls(self) -> list[WireCall]:
        """Every command seen: answered ones with the reply's status, the others with None."""
        return [*self.answered, *(_wire_call(c, None) for c in self._pending.values())]

    def in_flight(self, worker: str | None = None) -> int:
        """Commands (of ``worker``, or anyone's) published recently and not answered yet."""
        recent = time.monotonic() - _IN_FLIGHT_S
        return sum(
            1
            for c in self._pending.values()
            if c.at >= recent and (worker is None or c.worker == worker)
        )

    async def close(self) -> None:
        """Stop following the firehose."""
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _wire_call(command: _Command, status: int | None) -> WireCall:
    return WireCall(
        worker=command.worker,
        participant=command.participant,
        method=COMMAND,
        path=command.path,
        key=command.key,
        saga_id=command.saga_id,
        step=command.step,
        attempt=command.attempt,
        status=status,
    )
