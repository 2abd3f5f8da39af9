"""Use cases behind the REST API: register, start, cancel, retry, compensate."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any, NoReturn

from orchestrator import templates
from orchestrator.callbacks import attempt_of
from orchestrator.clock import utcnow
from orchestrator.conflicts import RETRY, Retry, retry_conflicts
from orchestrator.definitions import SagaDefinition, parse_definition
from orchestrator.errors import Conflict, Forbidden, InvalidRequest, NotFound
from orchestrator.journal import transition_history
from orchestrator.machine import (
    CallbackCompleted,
    CancelRequested,
    CompensateRequested,
    Event,
    OutcomeKind,
    RetryRequested,
    StepStatus,
    apply,
    start,
    wake_at,
)
from orchestrator.runtime import Runtime
from orchestrator.store.definitions import StoredDefinition
from orchestrator.store.errors import NotNewest
from orchestrator.store.rows import HistoryEvent, StoredSaga
from orchestrator.tracing import trace_id_from


class Operations:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    async def register(self, data: Any) -> tuple[StoredDefinition, bool]:
        definition = parse_definition(data, self.rt.routing.names())
        return await self.rt.definitions.register(definition, utcnow())

    async def definition(self, name: str, version: int | None = None) -> StoredDefinition:
        stored = await self.rt.definitions.get(name, version)
        if stored is None:
            what = f"definition {name!r}" + (f" version {version}" if version else "")
            raise NotFound(f"unknown {what}")
        return stored

    async def start_saga(
        self,
        name: str,
        version: int | None,
        saga_input: Any,
        idempotency_key: str | None,
        traceparent: str | None = None,
    ) -> tuple[StoredSaga, StoredDefinition, bool]:
        """Create a saga (asynchronously driven); ``created`` is False for a repeated key."""
        newest = version is None
        # The newest version this process knows saves a read per start; the
        # insert checks it is still the newest (another replica may have
        # registered one) and, if not, we read the newest and start on that.
        stored = self.rt.definitions.newest_seen(name) if newest else None
        if stored is None:
            stored = await self.definition(name, version)
        try:
            return await self._create(
                stored, version, saga_input, idempotency_key, traceparent, newest
            )
        except NotNewest:
            stored = await self.definition(name)
            return await self._create(
                stored, version, saga_input, idempotency_key, traceparent, False
            )

    async def _create(
        self,
        stored: StoredDefinition,
        version: int | None,
        saga_input: Any,
        idempotency_key: str | None,
        traceparent: str | None,
        newest_only: bool,
    ) -> tuple[StoredSaga, StoredDefinition, bool]:
        name = stored.name
        _check_input(stored.definition, saga_input)
        now = utcnow()
        plan = stored.definition.plan()
        state = start(plan, now)
        start_key = None
        if idempotency_key is not None:
            request = {"definition": name, "version": version, "input": saga_input}
            digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
            start_key = (idempotency_key, digest)
        worker = self.rt.worker
        # A saga started in a process that runs a worker with room is created
        # already leased to that worker and driven at once: no claim, no poll.
        # Should this process die first, the lease runs out and any worker
        # takes the saga over.
        lease = worker.lease_for_new() if worker is not None else None
        trace_id = trace_id_from(traceparent)
        saga_id = uuid.uuid4()
        wake = wake_at(plan, state)
        found_id, created = await self.rt.writer.create(
            saga_id=saga_id,
            definition=(stored.name, stored.version),
            saga_input=saga_input,
            state=state,
            wake_at=wake,
            now=now,
            start_key=start_key,
            lease=lease,
            trace_id=trace_id,
            newest_only=newest_only,
        )
        if not created:
            saga = await self.saga(found_id)
            stored = await self.definition(saga.definition_name, saga.definition_version)
            return saga, stored, False
        saga = StoredSaga(
            id=saga_id,
            definition_name=stored.name,
            definition_version=stored.version,
            input=saga_input,
            state=state,
            version=1,
            wake_at=lease.expires_at if lease is not None else wake,
            lease_owner=lease.owner if lease is not None else None,
            created_at=now,
            updated_at=now,
            trace_id=trace_id,
        )
        self.rt.metrics.sagas_started.labels(stored.name).inc()
        if worker is not None and lease is not None:
            worker.adopt(saga, stored.definition)
        else:
            if worker is not None:
                worker.notify()
            await self.rt.writer.announce_due()
        return saga, stored, True

    async def saga(self, saga_id: uuid.UUID) -> StoredSaga:
        saga = await self.rt.writer.load(saga_id)
        if saga is None:
            raise NotFound(f"unknown saga {saga_id}")
        return saga

    async def request(self, saga_id: uuid.UUID, event: Event, who: str) -> StoredSaga:
        """Apply an operator's or client's request; 409 with the machine's reason if refused."""

        async def attempt() -> StoredSaga | Retry:
            saga = await self.saga(saga_id)
            stored = await self.definition(saga.definition_name, saga.definition_version)
            plan = stored.definition.plan()
            now = utcnow()
            decision = apply(plan, saga.state, event, now, str(saga_id))
            if not decision.accepted:
                raise Conflict(decision.reason or "refused", saga_status=saga.state.status.value)
            history = [
                HistoryEvent("operator", now, detail={"action": _action(event), "by": who}),
                *transition_history(saga.state, decision.state, now),
            ]
            if await self.rt.writer.record_request(
                saga, decision.state, now, wake_at=wake_at(plan, decision.state), history=history
            ):
                if self.rt.worker is not None:
                    self.rt.worker.notify()
                return await self.saga(saga_id)
            self.rt.metrics.version_conflicts.inc()
            return RETRY

        return await retry_conflicts(attempt, _changing_too_fast)

    async def complete_callback(
        self,
        saga_id: uuid.UUID,
        step_name: str,
        token: str,
        outcome: str,
        result: Any,
        error: str | None,
    ) -> tuple[StoredSaga, SagaDefinition]:
        """Apply a participant's completion of a callback step (see the callbacks API)."""

        async def attempt() -> tuple[StoredSaga, SagaDefinition] | Retry:
            saga = await self.saga(saga_id)
            definition = await self.definition(saga.definition_name, saga.definition_version)
            plan = definition.definition.plan()
            index = next((i for i, s in enumerate(plan.steps) if s.name == step_name), None)
            if index is None:
                raise NotFound(f"saga {saga_id} has no step {step_name!r}")
            step = saga.state.steps[index]
            attempt = attempt_of(self.rt.callback_secret, token, saga_id, step_name, step.attempts)
            if attempt is None:
                raise Forbidden("the callback token is not valid for this step")
            kind = OutcomeKind.SUCCEEDED if outcome == "succeeded" else OutcomeKind.REJECTED
            now = utcnow()
            event = CallbackCompleted(index, attempt, kind, result, error)
            decision = apply(plan, saga.state, event, now, str(saga_id))
            note = HistoryEvent(
                "callback", now, step=step_name, phase="action", attempt=attempt, outcome=kind.value
            )
            if not decision.accepted:
                if step.status in (StepStatus.SUCCEEDED, StepStatus.REJECTED) and (
                    attempt == step.attempts
                ):
                    return saga, definition.definition  # a repeated completion: nothing to do
                late = HistoryEvent(
                    "callback",
                    now,
                    step=step_name,
                    phase="action",
                    attempt=attempt,
                    outcome="refused",
                    detail={"reason": "arrived after the step stopped waiting"},
                )
                await self.rt.writer.record_event(saga_id, late)
                raise Conflict(
                    "the completion arrived after the step stopped waiting for it",
                    step_status=step.status.value,
                )
            history = [note, *transition_history(saga.state, decision.state, now)]
            if await self.rt.writer.record_request(
                saga, decision.state, now, wake_at=wake_at(plan, decision.state), history=history
            ):
                if self.rt.worker is not None:
                    self.rt.worker.notify()
                return await self.saga(saga_id), definition.definition
            self.rt.metrics.version_conflicts.inc()
            return RETRY

        return await retry_conflicts(attempt, _changing_too_fast)

    async def retry_matching(
        self, status: str, definition: str | None, step: str | None, who: str
    ) -> int:
        """Re-arm every saga matching the filter; returns how many were re-armed."""
        count = 0
        for saga_id in await self.rt.reader.ids_to_retry(status=status, definition=definition):
            saga = await self.saga(saga_id)
            error = saga.state.error
            if step is not None and (error is None or error.step != step):
                continue
            try:
                await self.request(saga_id, RetryRequested(), who)
                count += 1
            except Conflict:
                continue  # it changed meanwhile; not ours to force
        return count


def _changing_too_fast() -> NoReturn:
    raise Conflict("the saga is changing too fast; try again")


def _action(event: Event) -> str:
    return {
        CancelRequested: "cancel",
        RetryRequested: "retry",
        CompensateRequested: "compensate",
    }.get(type(event), type(event).__name__)


def _check_input(definition: SagaDefinition, saga_input: Any) -> None:
    """Every ``$.input.`` value an action needs must be in the input (422 naming it)."""
    problems = []
    for step in definition.flat_steps():
        for ref in templates.references(step.action.body):
            if ref.source != "input":
                continue
            try:
                templates.render(ref.text, saga_input, {})
            except templates.MissingValue:
                problems.append(
                    {
                        "field": "input." + ".".join(ref.path),
                        "message": f"required by step {step.name!r}",
                    }
                )
    if problems:
        raise InvalidRequest("the input lacks values the definition needs", fields=problems)
