"""Driving one claimed saga: load -> decide -> call -> record, until it no longer needs us.

No database connection is held while a participant call is in flight: the
saga was read, the calls are made, then the outcome is written with
``WHERE version = :v``. A write that loses the race re-reads the row: if the
lease is still ours (an API request such as a cancel wrote in between) the
outcomes are folded into the fresh state and written again; otherwise another
worker owns the saga now and this one lets go.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from orchestrator import logs, templates
from orchestrator.clock import utcnow
from orchestrator.conflicts import MAX_CONFLICT_RETRIES, RETRY, Retry, retry_conflicts
from orchestrator.definitions import SagaDefinition, Step
from orchestrator.journal import call_history, transition_history
from orchestrator.machine import (
    ACTIVE_STATUSES,
    CallCommand,
    CallOutcome,
    Event,
    OutcomeKind,
    Phase,
    Plan,
    SagaState,
    Tick,
    apply,
    due_calls,
    wake_at,
)
from orchestrator.metrics import Metrics
from orchestrator.otel import CallSpans
from orchestrator.store.errors import StoreUnavailable
from orchestrator.store.rows import HistoryEvent, Lease, StoredSaga
from orchestrator.store.sagas import SagaWriter
from orchestrator.transport.call import NOT_SENT, CallIdentity, CallRequest, Transport
from orchestrator.transport.outcome import CallResult
from orchestrator.worker.leases import LeaseClock

log = logging.getLogger("orchestrator.worker")


@dataclass
class DriveContext:
    """What every drive of this worker shares."""

    owner: str
    writer: SagaWriter
    #: How calls reach participants; the worker knows only the ``Transport`` face.
    client: Transport
    metrics: Metrics
    lease_s: float
    hold_backoff_s: float
    stopping: asyncio.Event
    #: Exports each call as a span (a no-op unless OpenTelemetry export is on).
    spans: CallSpans = field(default_factory=CallSpans)
    #: How long this worker may still act on each saga, by its own clock.
    leases: LeaseClock = field(default_factory=LeaseClock)


def build_call(
    definition: SagaDefinition,
    saga: StoredSaga,
    state: SagaState,
    plan: Plan,
    command: CallCommand,
) -> CallRequest | CallResult:
    """The call for ``command``, or a rejection when its body cannot be built.

    The worker renders the body and says which call it is; how the call is
    framed on the wire (headers, idempotency key, callback URL and token) is
    the transport's.
    """
    step: Step = definition.flat_steps()[command.step]
    call = step.action if command.phase is Phase.ACTION else step.compensation
    assert call is not None, "the machine compensates only steps that have a compensation"
    results = state.results(plan)
    if call.body is None:
        body = {"saga_id": str(saga.id), "input": saga.input, "results": results}
    else:
        try:
            body = templates.render(call.body, saga.input, results)
        except templates.MissingValue as exc:
            if command.phase is Phase.ACTION:
                return CallResult(OutcomeKind.REJECTED, error=f"cannot build the body: {exc}")
            # A compensation may name a result its own action never returned
            # (outcome unknown); it must still run, so the value is null.
            body = templates.render(_nulling(call.body, results), saga.input, results)
    identity = CallIdentity(
        definition=definition.name,
        participant=step.participant,
        step=step.name,
        phase=command.phase.value,
        saga_id=str(saga.id),
        attempt=command.attempt,
    )
    return CallRequest(
        identity=identity,
        path=call.path,
        body=body,
        timeout_s=step.timeout_ms / 1000,
        trace_id=saga.trace_id,
        awaits_callback=step.completion == "callback" and command.phase is Phase.ACTION,
    )


def _nulling(body: object, results: dict[str, object]) -> object:
    if isinstance(body, dict):
        return {k: _nulling(v, results) for k, v in body.items()}
    if isinstance(body, list):
        return [_nulling(v, results) for v in body]
    ref = templates.parse(body)
    if ref is not None and ref.source == "results":
        try:
            templates.render(body, None, results)
        except templates.MissingValue:
            return None
    return body


class SagaDriver:
    """Drives one saga for as long as this worker holds it."""

    def __init__(self, ctx: DriveContext, definition: SagaDefinition, saga: StoredSaga) -> None:
        self.ctx = ctx
        self.definition = definition
        self.plan = definition.plan()
        self.saga = saga

    async def run(self) -> None:
        while True:
            now = utcnow()
            ticked = apply(self.plan, self.saga.state, Tick(), now, str(self.saga.id)).state
            if ticked != self.saga.state:
                if not await self.commit([Tick()], [], now):
                    return
                continue
            calls = due_calls(self.plan, ticked, now)
            if not calls:
                wake = wake_at(self.plan, ticked)
                if self._keep(ticked, wake, now) and wake is not None:
                    await self._sleep_until(wake, now)
                    continue
                await self.commit([], [], now)
                return
            if not self._holds():
                self._let_go(len(calls), "its calls are due")
                return
            events, history, withheld = await self._make_calls(calls, ticked)
            if withheld:
                # Nothing to record for a call not made; the next holder makes it.
                self._let_go(withheld, "its calls were about to go out")
                return
            if not await self.commit(events, history, utcnow()):
                return
            if self.saga.lease_owner is None:
                return

    def _holds(self) -> bool:
        return self.ctx.leases.valid(self.saga.id)

    def _let_go(self, calls: int, when: str) -> None:
        """The lease ran out by this worker's clock: make no call, leave the saga to others."""
        self.ctx.metrics.calls_withheld.inc(calls)
        log.warning(
            "saga %s: the lease ran out (by this worker's clock) as %s: letting go",
            self.saga.id,
            when,
        )

    async def _sleep_until(self, wake: datetime, now: datetime) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ctx.stopping.wait(), (wake - now).total_seconds())

    async def _make_calls(
        self, calls: Sequence[CallCommand], state: SagaState
    ) -> tuple[list[Event], list[HistoryEvent], int]:
        """The calls' outcomes and history, and how many were withheld (the lease ran out)."""
        requests = [build_call(self.definition, self.saga, state, self.plan, c) for c in calls]
        results = await asyncio.gather(
            *(
                self._call(c, r) if isinstance(r, CallRequest) else _done(r)
                for c, r in zip(calls, requests, strict=True)
            )
        )
        withheld = sum(1 for r in results if r.url is None and r.error == NOT_SENT)
        if withheld:
            return [], [], withheld
        now = utcnow()
        events: list[Event] = []
        history: list[HistoryEvent] = []
        for command, result in zip(calls, results, strict=True):
            name = self.plan.steps[command.step].name
            events.append(
                CallOutcome(
                    command.step,
                    command.phase,
                    command.attempt,
                    result.kind,
                    result.result,
                    result.error,
                )
            )
            history.append(call_history(command, name, result, now))
            self._observe(command, name, result)
        return events, history, 0

    def _observe(self, command: CallCommand, name: str, result: CallResult) -> None:
        """Metrics and the log line of one call."""
        metrics, phase = self.ctx.metrics, command.phase.value
        labels = (self.definition.name, name, phase)
        participant = self.definition.flat_steps()[command.step].participant
        metrics.step_calls.labels(
            self.definition.name, participant, name, phase, result.kind.value
        ).inc()
        metrics.step_call_seconds.labels(*labels).observe(result.duration_ms / 1000)
        if command.attempt > 1:
            metrics.step_retries.labels(*labels).inc()
        if command.phase is Phase.COMPENSATION and result.kind is OutcomeKind.SUCCEEDED:
            metrics.compensations.labels(self.definition.name, name).inc()
        if result.fault:
            metrics.faults_fired.labels(result.fault).inc()
        logs.calls.info(
            "call",
            extra={
                "fields": {
                    "saga_id": str(self.saga.id),
                    "definition": self.definition.name,
                    "step": name,
                    "phase": phase,
                    "attempt": command.attempt,
                    "outcome": result.kind.value,
                    "status": result.status,
                    "duration_ms": round(result.duration_ms, 2),
                    "error": result.error,
                    "fault": result.fault,
                }
            },
        )

    async def _call(self, command: CallCommand, request: CallRequest) -> CallResult:
        """Make the call; its result with the outcome the saga records."""
        asked = False

        def still_held() -> bool:
            nonlocal asked
            asked = True
            return self._holds()

        held_at_start = self._holds()
        # A copy draws its own traceparent: the span must be recorded for the one sent.
        sent = replace(request, still_held=still_held)
        result = await self.ctx.client.call(sent)
        if not asked and not held_at_start and result.error != NOT_SENT:
            # A transport that does not ask sent it after the lease ran out.
            self.ctx.metrics.zombie_calls.inc()
        if (
            result.kind is OutcomeKind.SUCCEEDED
            and result.status == 202
            and self.plan.steps[command.step].callback
            and command.phase is Phase.ACTION
        ):
            # The participant completes it later, by callback.
            result = replace(result, kind=OutcomeKind.ACCEPTED)
        self.ctx.spans.record(self.definition.name, sent, result)
        return result

    def _keep(self, state: SagaState, wake: datetime | None, now: datetime) -> bool:
        """Hold the saga (and its lease) while its next call is due soon."""
        if state.status not in ACTIVE_STATUSES or self.ctx.stopping.is_set():
            return False
        return wake is None or wake - now <= timedelta(seconds=self.ctx.hold_backoff_s)

    async def commit(self, events: list[Event], history: list[HistoryEvent], now: datetime) -> bool:
        """Fold ``events`` into the saga and write it; ``False`` when the saga is no longer ours."""
        base = self.saga
        key = str(base.id)

        async def attempt() -> bool | Retry:
            nonlocal base
            state = base.state
            for event in events:
                state = apply(self.plan, state, event, now, key).state
            wake = wake_at(self.plan, state)
            lease = (
                Lease(self.ctx.owner, now + timedelta(seconds=self.ctx.lease_s))
                if self._keep(state, wake, now)
                else None
            )
            written = await self._record(base, state, now, wake, lease, history, base.state)
            if written is not None:
                if lease is not None:
                    self.ctx.leases.granted([base.id], lease.expires_at)
                self.saga = written
                self._count_finish(base.state, state)
                return True
            fresh = await self._reload(base)
            if fresh is None:
                return False
            if fresh.version == base.version + 1 and fresh.state == state:
                self.saga = fresh  # the write that raised had landed after all
                self._count_finish(base.state, state)
                return True
            base = fresh
            return RETRY

        def give_up() -> bool:
            log.error("saga %s: gave up writing after %d conflicts", base.id, MAX_CONFLICT_RETRIES)
            return False

        return await retry_conflicts(attempt, give_up)

    async def _record(
        self,
        base: StoredSaga,
        state: SagaState,
        now: datetime,
        wake: datetime | None,
        lease: Lease | None,
        history: list[HistoryEvent],
        before: SagaState,
    ) -> StoredSaga | None:
        try:
            return await self.ctx.writer.record(
                base,
                state,
                now,
                wake_at=wake,
                lease=lease,
                history=[*history, *transition_history(before, state, now)],
            )
        except StoreUnavailable as exc:
            # The commit may or may not have happened: the caller re-reads.
            self.ctx.metrics.database_errors.labels("record").inc()
            log.warning("saga %s: writing the transition failed: %s", base.id, exc)
            await asyncio.sleep(0.2)
            return None

    async def _reload(self, base: StoredSaga) -> StoredSaga | None:
        """The saga as stored, if this worker still holds it."""
        delay = 0.1
        while True:
            try:
                fresh = await self.ctx.writer.load(base.id)
                break
            except StoreUnavailable as exc:
                self.ctx.metrics.database_errors.labels("load").inc()
                log.warning("saga %s: re-reading failed: %s", base.id, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        if fresh is None:
            return None
        if fresh.version != base.version:
            self.ctx.metrics.version_conflicts.inc()
        if fresh.lease_owner != self.ctx.owner:
            self.ctx.metrics.lost_leases.inc()
            return None
        return fresh

    def _count_finish(self, before: SagaState, after: SagaState) -> None:
        """Metrics and the log line of a status change."""
        if before.status is after.status:
            return
        error = after.error
        logs.transitions.info(
            "transition",
            extra={
                "fields": {
                    "saga_id": str(self.saga.id),
                    "definition": self.definition.name,
                    "from": before.status.value,
                    "to": after.status.value,
                    "step": error.step if error else None,
                    "error": error.message if error else None,
                }
            },
        )
        if after.status not in ACTIVE_STATUSES:
            status = after.status.value
            self.ctx.metrics.sagas_finished.labels(self.definition.name, status).inc()
            elapsed = (utcnow() - self.saga.created_at).total_seconds()
            self.ctx.metrics.saga_seconds.labels(self.definition.name, status).observe(elapsed)


async def _done(result: CallResult) -> CallResult:
    return result
