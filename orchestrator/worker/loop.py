"""The worker: claims due sagas in batches and drives many at once on one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from datetime import timedelta

from orchestrator.clock import utcnow
from orchestrator.definitions import SagaDefinition
from orchestrator.metrics import Metrics
from orchestrator.otel import CallSpans
from orchestrator.store.definitions import DefinitionStore
from orchestrator.store.errors import StoreUnavailable
from orchestrator.store.rows import Lease, StoredSaga
from orchestrator.store.sagas import SagaWriter
from orchestrator.store.wakeups import DueListener
from orchestrator.transport.call import Transport
from orchestrator.worker.drive import DriveContext, SagaDriver
from orchestrator.worker.leases import LeaseClock

log = logging.getLogger("orchestrator.worker")


def worker_id() -> str:
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Worker:
    """Claims due sagas (leases), drives each in its own task, renews leases in one batch.

    ``notify()`` wakes the claim loop at once (the API calls it after starting a
    saga in the same process); otherwise it polls every ``poll_interval_s``.
    """

    def __init__(
        self,
        writer: SagaWriter,
        definitions: DefinitionStore,
        client: Transport,
        metrics: Metrics,
        *,
        concurrency: int = 200,
        lease_s: float = 15.0,
        poll_interval_s: float = 0.5,
        claim_batch: int = 50,
        hold_backoff_s: float = 2.0,
        owner: str | None = None,
        spans: CallSpans | None = None,
    ) -> None:
        self.writer = writer
        self.definitions = definitions
        self.metrics = metrics
        self.concurrency = concurrency
        self.lease_s = lease_s
        self.poll_interval_s = poll_interval_s
        self.claim_batch = claim_batch
        self.owner = owner or worker_id()
        self.stopping = asyncio.Event()
        self.leases = LeaseClock()
        self.ctx = DriveContext(
            owner=self.owner,
            writer=writer,
            client=client,
            metrics=metrics,
            lease_s=lease_s,
            hold_backoff_s=hold_backoff_s,
            stopping=self.stopping,
            spans=spans or CallSpans(),
            leases=self.leases,
        )
        self._wake = asyncio.Event()
        self._held: dict[uuid.UUID, asyncio.Task[None]] = {}

    def notify(self) -> None:
        self._wake.set()

    def lease_for_new(self) -> Lease | None:
        """A lease for a saga about to be created here, if this worker can drive it now.

        The limit is soft: requests racing for the last slot may each get one.
        """
        if self.stopping.is_set() or len(self._held) >= self.concurrency:
            return None
        return Lease(self.owner, utcnow() + timedelta(seconds=self.lease_s))

    def adopt(self, saga: StoredSaga, definition: SagaDefinition) -> None:
        """Drive a saga just created with a lease from :meth:`lease_for_new`."""
        if saga.wake_at is not None:  # a new saga's wake-up is its lease's expiry
            self.leases.granted([saga.id], saga.wake_at)
        self._start(saga, definition)

    @property
    def held(self) -> int:
        return len(self._held)

    async def run(self, listener: DueListener | None = None) -> None:
        """Claim and drive until ``stop()``; ``listener`` wakes the claim loop from afar."""
        renewer = asyncio.create_task(self._renew_leases())
        listening = asyncio.create_task(listener.run()) if listener is not None else None
        delay = self.poll_interval_s
        try:
            while not self.stopping.is_set():
                free = self.concurrency - len(self._held)
                claimed: list[StoredSaga] = []
                if free > 0:
                    try:
                        claimed = await self._claim(min(free, self.claim_batch))
                        delay = self.poll_interval_s
                    except StoreUnavailable as exc:
                        self.metrics.database_errors.labels("claim").inc()
                        log.warning("claiming failed, retrying in %.1fs: %s", delay, exc)
                        delay = min(delay * 2, 5.0)
                for saga in claimed:
                    self.metrics.claimed.inc()
                    self._start(saga)
                if claimed and len(claimed) == min(free, self.claim_batch):
                    continue  # there may be more due right now
                await self._wait(delay)
        finally:
            renewer.cancel()
            if listening is not None:
                listening.cancel()
                await asyncio.gather(listening, return_exceptions=True)

    async def _claim(self, limit: int) -> list[StoredSaga]:
        started, now = time.perf_counter(), utcnow()
        claimed = await self.writer.claim(self.owner, now, self.lease_s, limit)
        self.leases.granted([saga.id for saga, _ in claimed], now + timedelta(seconds=self.lease_s))
        self.metrics.claim_seconds.observe(time.perf_counter() - started)
        self.metrics.claim_batch.observe(len(claimed))
        for _saga, previous in claimed:
            if previous is not None and previous != self.owner:
                self.metrics.takeovers.inc()
                log.info("took over saga %s from %s", _saga.id, previous)
        return [saga for saga, _ in claimed]

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    def _start(self, saga: StoredSaga, definition: SagaDefinition | None = None) -> None:
        if saga.id in self._held:
            # Our own lease ran out and we claimed it again: the task already
            # driving it will see the new version on its next write and go on.
            return
        task = asyncio.create_task(self._drive(saga, definition))
        self._held[saga.id] = task
        self.metrics.held.set(len(self._held))

    async def _drive(self, saga: StoredSaga, definition: SagaDefinition | None) -> None:
        try:
            if definition is not None:
                await SagaDriver(self.ctx, definition, saga).run()
                return
            stored = await self.definitions.get(saga.definition_name, saga.definition_version)
            if stored is None:
                log.error(
                    "saga %s: definition %s v%s is missing",
                    saga.id,
                    saga.definition_name,
                    saga.definition_version,
                )
                return
            await SagaDriver(self.ctx, stored.definition, saga).run()
        except Exception:
            # A bug or an outage outlasting the retries: the lease runs out and
            # the saga is picked up again; nothing recorded is lost.
            log.exception("saga %s: driving failed", saga.id)
        finally:
            full = len(self._held) >= self.concurrency
            self._held.pop(saga.id, None)
            self.leases.forget(saga.id)
            self.metrics.held.set(len(self._held))
            if full:
                self._wake.set()  # a slot is free: claim now rather than at the next poll

    async def _renew_leases(self) -> None:
        interval = self.lease_s / 3
        while True:
            await asyncio.sleep(interval)
            ids = list(self._held)
            expires_at = utcnow() + timedelta(seconds=self.lease_s)
            try:
                held = await self.writer.renew(self.owner, ids, expires_at)
                self.leases.granted([i for i in held if i in self._held], expires_at)
            except StoreUnavailable as exc:
                self.metrics.database_errors.labels("renew").inc()
                log.warning("renewing %d leases failed: %s", len(ids), exc)

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop claiming; let in-flight calls finish and be recorded; release the rest."""
        self.stopping.set()
        self._wake.set()
        tasks = list(self._held.values())
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        try:
            released = await self.writer.release_all(self.owner, utcnow())
            if released:
                log.info("released %d sagas", released)
        except StoreUnavailable as exc:
            log.warning("releasing leases failed (they will expire): %s", exc)
