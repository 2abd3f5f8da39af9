"""The composition root: builds every piece of one orchestrator process from its settings."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.callbacks import callback_token
from orchestrator.clock import utcnow
from orchestrator.fault_injection import FaultInjector
from orchestrator.metrics import Metrics
from orchestrator.otel import CallSpans, call_spans
from orchestrator.settings import Settings
from orchestrator.store.definitions import DefinitionStore
from orchestrator.store.engine import create_engine
from orchestrator.store.errors import StoreUnavailable
from orchestrator.store.faults import FaultStore
from orchestrator.store.reads import SagaReader
from orchestrator.store.sagas import SagaWriter
from orchestrator.store.secrets import shared_secret
from orchestrator.store.wakeups import DueListener, listen_dsn
from orchestrator.transport.amqp import AmqpClient, is_amqp
from orchestrator.transport.call import CallIdentity, Transport
from orchestrator.transport.client import ParticipantClient
from orchestrator.transport.dispatch import TransportByAddress
from orchestrator.transport.routing import Routing
from orchestrator.worker.loop import Worker

log = logging.getLogger("orchestrator")


@dataclass(frozen=True)
class CallbackSigner:
    """Issues callback tokens under the shared secret (the transport's ``CallbackTokens``)."""

    secret: str = field(repr=False)

    def token(self, call: CallIdentity) -> str:
        """The token that completes this attempt of the call's step."""
        return callback_token(self.secret, call.saga_id, call.step, call.attempt)


@dataclass
class Runtime:
    """Every piece of one process; :meth:`build` makes it, :meth:`start` runs it.

    The participant client and the worker exist only once :meth:`start` has
    resolved the callback secret (possibly from the database): they are built
    with it rather than handed it afterwards.
    """

    settings: Settings
    engine: AsyncEngine
    metrics: Metrics
    definitions: DefinitionStore
    writer: SagaWriter
    reader: SagaReader
    faults: FaultStore
    injector: FaultInjector | None
    routing: Routing
    spans: CallSpans = field(default_factory=CallSpans)
    with_worker: bool = False
    client: Transport | None = None
    worker: Worker | None = None
    public_url: str = "http://127.0.0.1:8000"
    callback_secret: str = ""
    _worker_task: asyncio.Task[None] | None = field(default=None, repr=False)

    @classmethod
    def build(cls, settings: Settings, *, with_worker: bool) -> Runtime:
        spans = call_spans(settings)  # first: a missing extra stops the process before anything
        metrics = Metrics()
        engine = create_engine(
            settings.database_url,
            pool_size=settings.database_pool_size,
            stall_limit_s=settings.lease_s,
            on_commit=metrics.database_commits.inc,
            connect_timeout_s=settings.database_connect_timeout_s,
            command_timeout_s=settings.database_command_timeout_s,
            pool_timeout_s=settings.database_pool_timeout_s,
        )
        definitions = DefinitionStore(engine)
        writer = SagaWriter(engine)
        faults = FaultStore(engine)
        injector = (
            FaultInjector(faults, settings.fault_refresh_s) if settings.enable_faults else None
        )
        return cls(
            settings=settings,
            engine=engine,
            metrics=metrics,
            definitions=definitions,
            writer=writer,
            reader=SagaReader(engine),
            faults=faults,
            injector=injector,
            routing=Routing(settings.participants),
            spans=spans,
            with_worker=with_worker,
            public_url=(settings.public_url or "http://127.0.0.1:8000").rstrip("/"),
        )

    async def start(self) -> None:
        """Resolve the callback secret, then build and start the worker (if there is one)."""
        self.callback_secret = self.settings.callback_secret or await self._first_contact()
        if self.settings.enable_faults:
            log.warning("FAULT INJECTION IS ENABLED: /v1/faults can make participant calls fail")
        if self.with_worker:
            self.worker = self._worker(self.callback_secret)
            dsn = listen_dsn(self.settings.database_url)
            listener = DueListener(dsn, self.worker.notify) if dsn is not None else None
            self._worker_task = asyncio.create_task(self.worker.run(listener))
            self._worker_task.add_done_callback(_report_worker_end)
            log.info("worker %s started", self.worker.owner)

    def _worker(self, callback_secret: str) -> Worker:
        """The worker and its participant client, signing callbacks with ``callback_secret``."""
        settings = self.settings
        signer = CallbackSigner(callback_secret)
        http = ParticipantClient(
            self.routing,
            self.injector,
            settings.max_response_bytes,
            settings.http_connections_per_participant,
            callbacks=signer,
            public_url=self.public_url,
        )
        brokers = any(is_amqp(u) for urls in self.routing.participants.values() for u in urls)
        amqp = (
            AmqpClient(
                self.routing,
                self.injector,
                settings.max_response_bytes,
                metrics=self.metrics,
                callbacks=signer,
                public_url=self.public_url,
            )
            if brokers
            else None
        )
        self.client = TransportByAddress(self.routing, http, amqp)
        return Worker(
            self.writer,
            self.definitions,
            self.client,
            self.metrics,
            concurrency=settings.worker_concurrency,
            lease_s=settings.lease_s,
            poll_interval_s=settings.poll_interval_s,
            claim_batch=settings.claim_batch,
            hold_backoff_s=settings.hold_backoff_s,
            spans=self.spans,
        )

    async def _first_contact(self) -> str:
        """The shared callback secret, waiting for the database if it is not up yet.

        A process restarted together with PostgreSQL (or before it finished
        recovering) should come up once the database does, not exit.
        """
        deadline = asyncio.get_running_loop().time() + self.settings.startup_wait_s
        delay = 0.2
        while True:
            try:
                return await shared_secret(self.engine)
            except StoreUnavailable as exc:
                if asyncio.get_running_loop().time() + delay > deadline:
                    raise
                log.warning("database not reachable yet, retrying in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def refresh_gauges(self) -> None:
        """Set the gauges that describe the whole system, read from the database now."""
        pool = self.engine.sync_engine.pool
        checked_out = getattr(pool, "checkedout", None)
        if callable(checked_out):
            self.metrics.pool_in_use.set(checked_out())
        try:
            async with asyncio.timeout(2):
                counts, earliest = await self.reader.gauges()
        except (TimeoutError, StoreUnavailable) as exc:
            log.warning("metrics: reading the saga gauges failed: %s", exc)
            self.metrics.database_up.set(0)
            return
        self.metrics.database_up.set(1)
        for status, count in counts.items():
            self.metrics.sagas.labels(status).set(count)
        overdue = (utcnow() - earliest).total_seconds() if earliest is not None else 0.0
        self.metrics.oldest_due.set(max(overdue, 0.0))

    async def stop(self, grace_s: float = 10.0) -> None:
        if self.worker is not None:
            await self.worker.stop(grace_s)
        if self._worker_task is not None:
            await asyncio.gather(self._worker_task, return_exceptions=True)
        if self.client is not None:
            await self.client.aclose()
        await asyncio.to_thread(self.spans.shutdown)  # the last batch goes out over HTTP
        await self.engine.dispose()


def _report_worker_end(task: asyncio.Task[None]) -> None:
    """Say loudly when the worker stops by an error: the API goes on serving without it."""
    if task.cancelled() or task.exception() is None:
        return
    log.critical(
        "the worker stopped on an error; no saga is driven by this process",
        exc_info=task.exception(),
    )
