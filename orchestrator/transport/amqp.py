"""Calls to participants over AMQP 0-9-1 (RabbitMQ): one command message, one reply.

The protocol is HTTP's, carried in message properties (``../shared`` API,
"Broker participants"): the command goes to the default exchange with the
participant's queue as routing key, persistent, with publisher confirms and
``mandatory`` (no queue: nothing was taken, a transient failure); its
``message_id`` is the idempotency key, its ``type`` the step's path, its
headers the ``X-Saga-*`` values; ``correlation_id`` is new for every attempt
and ``reply_to`` names this process's reply queue. The reply carries a
``status`` header with HTTP's meaning and the JSON answer.

Why the same guarantees hold: an attempt is what it is over HTTP. Its deadline
runs from before the publish to the reply; a reply that arrives later, or a
second reply to one attempt, matches no waiting attempt and changes nothing
(it is counted and logged). The saga row already records that the call is
due, so a worker that dies between publishing and recording the outcome is
replaced by one that publishes again with the same key, and the participant
replays its stored answer: no outbox table is needed (see ``docs/decisions.md``,
"Broker participants").

One robust connection per broker, opened at the first call (a broker that is
down when the process starts is a transient failure of the calls that need it,
not a failed start) and re-established by aio-pika after any loss.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)

from orchestrator import json_codec
from orchestrator.machine import OutcomeKind
from orchestrator.metrics import Metrics
from orchestrator.settings import redact_url
from orchestrator.transport import protocol
from orchestrator.transport.call import NOT_SENT, CallbackTokens, CallRequest
from orchestrator.transport.faults import (
    Answer,
    FaultPicker,
    InjectedFault,
    send_with_fault,
)
from orchestrator.transport.outcome import CallResult, call_result, classify_response
from orchestrator.transport.routing import Routing

log = logging.getLogger(__name__)

SCHEMES = ("amqp://", "amqps://")
REPLY_QUEUE_PREFIX = "saga.replies."
#: The reply header carrying the answer's status (an integer with HTTP's meaning).
STATUS_HEADER = "status"
#: How many finished attempts are remembered to tell a late reply from a duplicate.
_REMEMBERED = 10_000
#: Longest wait for a broker connection within one attempt's deadline.
_CONNECT_TIMEOUT_S = 5.0


def reply_queue_name() -> str:
    """``saga.replies.<host>.<pid>.<random>``: whose replies a queue holds, for an operator
    listing queues (and for a witness attributing commands to processes)."""
    return f"{REPLY_QUEUE_PREFIX}{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"


def replying_pid(reply_to: str) -> int | None:
    """The process whose reply queue is ``reply_to`` (see :func:`reply_queue_name`)."""
    if not reply_to.startswith(REPLY_QUEUE_PREFIX):
        return None
    parts = reply_to.rsplit(".", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def is_amqp(url: str) -> bool:
    """Whether ``url`` names a broker participant (``amqp://`` or ``amqps://``)."""
    return url.startswith(SCHEMES)


@dataclass(frozen=True)
class AmqpAddress:
    """A broker participant's address: the broker (with credentials) and its command queue."""

    broker: str
    queue: str

    @classmethod
    def parse(cls, url: str) -> AmqpAddress:
        """``amqp://user:pass@host:5672/%2F?queue=payments``; ``ValueError`` names what is wrong
        (never the password)."""
        parts = urlsplit(url)
        if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
            raise ValueError(f"{redact_url(url)!r} is not an amqp:// URL with a host")
        queues = parse_qs(parts.query).get("queue", [])
        if len(queues) != 1 or not queues[0].strip():
            raise ValueError(f"{redact_url(url)!r} names no command queue (add ?queue=<name>)")
        broker = urlunsplit((parts.scheme, parts.netloc, parts.path or "/", "", ""))
        return cls(broker=broker, queue=queues[0].strip())

    def display(self) -> str:
        """The address as it may be shown: the password masked."""
        return f"{redact_url(self.broker)}?queue={self.queue}"


class _NotTaken(Exception):
    """The broker did not take the command (unreachable, no such queue): try the next address."""


@dataclass
class _Attempt:
    participant: str
    call: str  # saga, step, phase and attempt: what a log line about a stray reply names
    answer: asyncio.Future[Answer]


@dataclass
class _Broker:
    """One broker: its connection, the channel commands are published on, the reply queue."""

    url: str
    connection: AbstractRobustConnection
    channel: AbstractRobustChannel
    replies: AbstractQueue
    waiting: dict[str, _Attempt] = field(default_factory=dict)
    #: correlation id -> (participant, "answered" | "timed out"), oldest first.
    finished: OrderedDict[str, tuple[str, str]] = field(default_factory=OrderedDict)


class AmqpClient:
    """Every broker participant call of a process (a ``Transport``)."""

    def __init__(
        self,
        routing: Routing,
        faults: FaultPicker | None = None,
        max_response_bytes: int = 1_048_576,
        *,
        metrics: Metrics | None = None,
        callbacks: CallbackTokens | None = None,
        public_url: str = "http://127.0.0.1:8000",
    ) -> None:
        self.routing = routing
        self.faults = faults
        self.max_response_bytes = max_response_bytes
        self.metrics = metrics
        self.callbacks = callbacks
        self.public_url = public_url
        self._addresses = {
            url: AmqpAddress.parse(url)
            for urls in routing.participants.values()
            for url in urls
            if is_amqp(url)
        }
        self._brokers: dict[str, _Broker] = {}
        self._connecting: dict[str, asyncio.Lock] = {}
        self._closed = False

    async def call(self, request: CallRequest) -> CallResult:
        """Make one attempt; never raises for anything the participant, broker or network does."""
        started = time.perf_counter()
        fault = await self.faults.pick(request.identity) if self.faults is not None else None
        if request.still_held is not None and not request.still_held():
            return call_result(started, OutcomeKind.TRANSIENT, None, fault, error=NOT_SENT)
        participant = request.identity.participant
        shown: str | None = None  # the address tried last, as the history may show it
        last_refusal = "no address of the participant took the command"
        try:
            async with asyncio.timeout(request.timeout_s):
                for url in self.routing.candidates(participant):
                    address = self._addresses[url]
                    shown = address.display()
                    try:
                        status, body = await send_with_fault(
                            fault, partial(self._send, address, request), request.timeout_s
                        )
                        break
                    except _NotTaken as exc:
                        last_refusal = str(exc)
                        continue
                else:
                    raise _NotTaken(last_refusal)
        except TimeoutError:
            return call_result(
                started,
                OutcomeKind.TRANSIENT,
                shown,
                fault,
                error=f"timed out after {request.timeout_s * 1000:.0f} ms",
            )
        except (_NotTaken, InjectedFault) as exc:
            return call_result(
                started, OutcomeKind.TRANSIENT, shown, fault, error=f"{type(exc).__name__}: {exc}"
            )
        if len(body) > self.max_response_bytes:
            return call_result(
                started,
                OutcomeKind.TRANSIENT,
                shown,
                fault,
                error=f"reply larger than {self.max_response_bytes} bytes",
            )
        kind, result, error = classify_response(status, body)
        return call_result(started, kind, shown, fault, status=status, result=result, error=error)

    async def _send(self, address: AmqpAddress, request: CallRequest) -> Answer:
        """Publish the command (confirmed), then wait for its reply until the caller's deadline."""
        broker = await self._broker(address.broker)
        i = request.identity
        correlation_id = uuid.uuid4().hex
        attempt = _Attempt(
            i.participant,
            f"saga {i.saga_id} step {i.step} ({i.phase}) attempt {i.attempt}",
            asyncio.get_running_loop().create_future(),
        )
        broker.waiting[correlation_id] = attempt
        try:
            message = aio_pika.Message(
                json_codec.dumps(request.body),
                content_type=protocol.JSON,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=protocol.idempotency_key(i),
                type=request.path,
                correlation_id=correlation_id,
                reply_to=broker.replies.name,
                headers=_headers(
                    request, protocol.callback_for(request, self.callbacks, self.public_url)
                ),
            )
            self._count("published", i.participant)
            try:
                await broker.channel.default_exchange.publish(
                    message, routing_key=address.queue, mandatory=True
                )
            except aiormq.exceptions.PublishError:
                raise _NotTaken(f"no queue {address.queue!r} on the broker") from None
            except (aiormq.exceptions.AMQPError, aio_pika.exceptions.AMQPException, OSError) as exc:
                raise _NotTaken(f"the broker did not confirm the command: {exc!r}") from None
            self._count("confirmed", i.participant)
            return await attempt.answer
        finally:
            del broker.waiting[correlation_id]
            # A deadline that ends the wait cancels the future: that attempt timed out.
            answered = attempt.answer.done() and not attempt.answer.cancelled()
            ended = "answered" if answered else "timed out"
            broker.finished[correlation_id] = (i.participant, ended)
            while len(broker.finished) > _REMEMBERED:
                broker.finished.popitem(last=False)

    async def _broker(self, url: str) -> _Broker:
        broker = self._brokers.get(url)
        if broker is not None:
            return broker
        lock = self._connecting.setdefault(url, asyncio.Lock())
        async with lock:
            broker = self._brokers.get(url)
            if broker is None:
                broker = await self._connect(url)
                self._brokers[url] = broker
        return broker

    async def _connect(self, url: str) -> _Broker:
        if self._closed:
            raise _NotTaken("the client is closed")
        try:
            async with asyncio.timeout(_CONNECT_TIMEOUT_S):
                connection = await aio_pika.connect_robust(url, timeout=_CONNECT_TIMEOUT_S)
        except (TimeoutError, OSError, aiormq.exceptions.AMQPError) as exc:
            # The broker's URL carries its password: the error names the host only.
            raise _NotTaken(f"cannot reach the broker at {redact_url(url)}: {exc}") from None
        try:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            replies = await channel.declare_queue(
                reply_queue_name(), exclusive=True, auto_delete=True
            )
            broker = _Broker(url, connection, channel, replies)
            await replies.consume(partial(self._on_reply, broker), no_ack=True)
        except BaseException:
            await connection.close()
            raise
        log.info("connected to the broker at %s", redact_url(url))
        return broker

    async def _on_reply(self, broker: _Broker, message: AbstractIncomingMessage) -> None:
        correlation_id = message.correlation_id or ""
        attempt = broker.waiting.get(correlation_id)
        if attempt is None or attempt.answer.done():
            participant, ended = broker.finished.get(correlation_id, ("", "unknown"))
            if attempt is not None:
                participant, ended = attempt.participant, "answered"
            kind = {"answered": "duplicate", "timed out": "late"}.get(ended, "unknown")
            self._count("replies", participant or "unknown", kind)
            log.warning(
                "%s reply ignored (correlation id %s): its attempt %s",
                kind,
                correlation_id,
                ended if ended != "unknown" else "is not one of this process's",
            )
            return
        self._count("replies", attempt.participant, "matched")
        attempt.answer.set_result((_status(message), message.body))

    def _count(self, what: str, participant: str, kind: str = "") -> None:
        if self.metrics is None:
            return
        if what == "published":
            self.metrics.broker_published.labels(participant).inc()
        elif what == "confirmed":
            self.metrics.broker_confirmed.labels(participant).inc()
        else:
            self.metrics.broker_replies.labels(participant, kind).inc()

    async def aclose(self) -> None:
        """Close every broker connection; attempts still waiting end as timed out."""
        self._closed = True
        brokers, self._brokers = list(self._brokers.values()), {}
        for broker in brokers:
            await broker.connection.close()


def _headers(request: CallRequest, callback: tuple[str, str] | None) -> dict[str, Any]:
    """The command's headers: the HTTP protocol's, but for what message properties carry."""
    sent = protocol.headers(request, callback)
    for carried in (protocol.IDEMPOTENCY_KEY, protocol.CONTENT_TYPE):
        del sent[carried]
    return dict(sent)


def _status(message: AbstractIncomingMessage) -> int:
    """The reply's status; a reply without a readable one is a participant bug, so transient."""
    raw = (message.headers or {}).get(STATUS_HEADER)
    try:
        return int(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 502


async def queue_health(url: str, timeout_s: float = 2.0) -> dict[str, Any]:
    """A broker participant's health: whether its broker answers, its queue's depth and consumers.

    Opens a connection of its own (the API process may have no worker, hence no
    client); ``health`` is ``up`` when the queue exists and has a consumer.
    """
    address = AmqpAddress.parse(url)
    shown: dict[str, Any] = {"url": address.display(), "transport": "amqp", "queue": address.queue}
    try:
        async with asyncio.timeout(timeout_s):
            connection = await aio_pika.connect(address.broker, timeout=timeout_s)
            try:
                channel = await connection.channel()
                queue = await channel.declare_queue(address.queue, passive=True)
                declared = queue.declaration_result
            finally:
                await connection.close()
    except aiormq.exceptions.ChannelNotFoundEntity:
        return {**shown, "health": "down", "broker": "up", "error": "no such queue"}
    except (TimeoutError, OSError, aiormq.exceptions.AMQPError) as exc:
        error = redact_url(str(exc)) if str(exc) else type(exc).__name__
        return {**shown, "health": "down", "broker": "down", "error": error}
    consumers = declared.consumer_count or 0
    return {
        **shown,
        "health": "up" if consumers > 0 else "down",
        "broker": "up",
        "messages": declared.message_count or 0,
        "consumers": consumers,
    }
