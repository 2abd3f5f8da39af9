"""The idempotent call: claim the key, apply once, store the answer, replay it after.

Theory of operation. Every call to an action or compensation endpoint runs as
one database transaction that begins by claiming its idempotency key (see
:func:`participants.kit.store.claim`). Whoever claims the key runs the handler
and records the answer in the same transaction, so the business change, the
key and the answer commit together or not at all. Whoever finds the key taken
answers from the row: the stored answer for the same body, 409 for a
different body, 409 for an action whose compensation got there first. (A
compensation's body is not compared: its key alone says what to undo, and the
orchestrator's default body carries results that may grow between retries.)

A compensation also claims its action's key, as a tombstone. If that claim
succeeds the action never arrived: nothing to undo, and the tombstone makes
the action refuse itself should it arrive later. If the action's key is taken
the action came first: when it was applied the handler undoes it and the
action's row becomes ``compensated``; a rejected action left nothing to undo.

An action declared ``callback=True`` and called with the orchestrator's
callback headers records the completion it owes in the same transaction and
answers ``202``; that ``202`` is the stored answer its retries replay, and a
retry bringing a newer attempt's token re-aims the owed completion at it (see
:mod:`participants.kit.callbacks`).

Nothing is stored for failures that are not a business "no" (bugs, database
trouble, injected errors before commit): the transaction rolls back and the
caller's retry, with the same key, starts afresh. Nor for a compensation's
refusal: a compensation must succeed in the end, so the same key has to get a
fresh try once the cause is fixed; only an action's "no" is final.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncConnection

from participants.kit import completions, store
from participants.kit.callbacks import Completer, accepted_body, callback_target
from participants.kit.completions import CallbackTarget
from participants.kit.database import Database
from participants.kit.effects import ActionRecord, ActionSpec, CompensationSpec, Effect, Result
from participants.kit.errors import Rejected, error_body, error_response
from participants.kit.faults import FaultBoard, Injection
from participants.kit.keys import IDEMPOTENCY_HEADER, IdempotencyKey, fingerprint
from participants.kit.metrics import KitMetrics
from participants.kit.schema import EffectStatus, Phase

logger = logging.getLogger(__name__)

REPLAY_HEADER = "Idempotent-Replayed"


@dataclass(frozen=True)
class Answer:
    """An HTTP answer as stored with its key."""

    status_code: int
    body: Any


Work = Callable[[AsyncConnection, IdempotencyKey, Any], Awaitable[Answer]]
"""What a call does once it holds its key: returns the answer to store."""


class _RollBack(Exception):
    """Raised inside a call's transaction to undo everything, key included, and answer."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.status_code)
        self.answer = answer


@dataclass
class EffectRunner:
    """Runs idempotent calls for one service."""

    db: Database
    metrics: KitMetrics
    faults: FaultBoard
    optimistic_attempts: int
    completer: Completer | None = None
    """Sends owed completions; set when the service has callback actions."""

    async def run_action(self, spec: ActionSpec, request: Request, payload: Any) -> JSONResponse:
        """Serve one call of an action endpoint (``payload``: the validated body)."""
        target = callback_target(request.headers) if spec.callback else None

        async def work(conn: AsyncConnection, key: IdempotencyKey, body: Any) -> Answer:
            effect = self._effect(conn, key, spec.path, body, request)
            return await self._apply(
                conn,
                key,
                spec.path,
                lambda: spec.handler(effect, payload),
                spec.status_code,
                target,
            )

        response = await self._run(spec.path, Phase.ACTION, request, work, target)
        if target is not None and self.completer is not None:
            self.completer.wake()  # committed or not: looking costs one query
        return response

    async def run_compensation(self, spec: CompensationSpec, request: Request) -> JSONResponse:
        """Serve one call of a compensation endpoint."""

        async def work(conn: AsyncConnection, key: IdempotencyKey, body: Any) -> Answer:
            return await self._compensate(conn, spec, key, body, request)

        return await self._run(spec.path, Phase.COMPENSATION, request, work)

    async def _run(
        self,
        endpoint: str,
        phase: Phase,
        request: Request,
        work: Work,
        target: CallbackTarget | None = None,
    ) -> JSONResponse:
        key = IdempotencyKey.parse(request.headers.get(IDEMPOTENCY_HEADER), phase)
        body = await _json_body(request)
        digest = fingerprint(body)
        try:
            async with self.db.transaction() as conn:
                claimed = await store.claim(conn, key, endpoint, request_hash=digest, request=body)
                if not claimed:
                    return await self._answer_taken(conn, key, endpoint, digest, target)
                # Drawn only for a call that will run: a replay or a refusal must not
                # use up a rule's count without failing anything.
                injection = self._draw_faults(endpoint, phase)
                await injection.hold()
                if injection.mode == "reject":
                    answer = await self._refuse(conn, key, endpoint, injection.rejection())
                else:
                    answer = await work(conn, key, body)
                if injection.mode == "error_before_commit":
                    raise _RollBack(_injected_error(injection))
        except _RollBack as rollback:
            answer = rollback.answer
        else:
            if injection.mode == "error_after_commit":
                answer = _injected_error(injection)
        return JSONResponse(answer.body, answer.status_code)

    async def _compensate(
        self,
        conn: AsyncConnection,
        spec: CompensationSpec,
        key: IdempotencyKey,
        body: Any,
        request: Request,
    ) -> Answer:
        action_key = key.with_phase(Phase.ACTION)
        if await store.claim(conn, action_key, spec.undoes, status=EffectStatus.TOMBSTONE):
            logger.info("tombstone for %s: compensated before it arrived", action_key.value)
            return await self._nothing_to_undo(conn, key, spec.path, "absent")
        action = await store.load(conn, action_key.value, lock=True)
        if action.status is not EffectStatus.APPLIED:
            return await self._nothing_to_undo(conn, key, spec.path, action.status)
        if action.endpoint != spec.undoes:
            mismatch = Rejected(
                "compensation_mismatch",
                f"{action_key.value} was applied by {action.endpoint}, "
                f"which {spec.path} does not undo",
            )
            return await self._refuse(conn, key, spec.path, mismatch)
        response = action.response
        if action.status_code == 202 and self.completer is not None:
            # Answered "accepted": what the action did is in the completion it owed.
            response = await completions.result_of(conn, action_key.value)
        record = ActionRecord(
            action.key,
            action.endpoint,
            action.request,
            action.status_code or 0,
            response,
            action.applied_at,
        )
        effect = self._effect(conn, key, spec.path, body, request)
        answer = await self._apply(conn, key, spec.path, lambda: spec.handler(effect, record), 200)
        if answer.status_code < 300:
            await store.mark_compensated(conn, action_key.value)
        return answer

    async def _apply(
        self,
        conn: AsyncConnection,
        key: IdempotencyKey,
        endpoint: str,
        call: Callable[[], Awaitable[Result]],
        status_code: int,
        target: CallbackTarget | None = None,
    ) -> Answer:
        try:
            # A savepoint, so a handler that wrote and then refused leaves no trace.
            async with conn.begin_nested():
                result = await call()
        except Rejected as refusal:
            return await self._refuse(conn, key, endpoint, refusal)
        self._count(endpoint, key.phase, "applied")
        answer = Answer(status_code, jsonable_encoder(result))
        if target is not None:
            completion = {"outcome": "succeeded", "result": answer.body}
            await completions.owe(conn, key, target, completion)
            answer = Answer(202, accepted_body(key.value))
        return await self._settle(conn, key, EffectStatus.APPLIED, answer)

    async def _refuse(
        self, conn: AsyncConnection, key: IdempotencyKey, endpoint: str, refusal: Rejected
    ) -> Answer:
        self._count(endpoint, key.phase, "rejected")
        answer = Answer(refusal.status, refusal.body())
        if key.phase is Phase.COMPENSATION:
            # Not kept: a compensation has to succeed in the end, so once an operator
            # has fixed the cause, a retry with the same key must get a fresh try.
            raise _RollBack(answer)
        return await self._settle(conn, key, EffectStatus.REJECTED, answer)

    async def _nothing_to_undo(
        self, conn: AsyncConnection, key: IdempotencyKey, endpoint: str, action_status: str
    ) -> Answer:
        self._count(endpoint, key.phase, "nothing_to_undo")
        answer = Answer(200, {"undone": False, "action_status": str(action_status)})
        return await self._settle(conn, key, EffectStatus.APPLIED, answer)

    async def _answer_taken(
        self,
        conn: AsyncConnection,
        key: IdempotencyKey,
        endpoint: str,
        digest: str,
        target: CallbackTarget | None,
    ) -> JSONResponse:
        row = await store.load(conn, key.value)
        if row.status is EffectStatus.TOMBSTONE:
            self.metrics.tombstone_refusals.labels(endpoint).inc()
            self._count(endpoint, key.phase, "refused")
            return error_response(
                409,
                "compensated_before_action",
                f"the compensation of {key.value} arrived first; this action is refused",
            )
        # A compensation key alone says what to undo, and the orchestrator's default
        # body (its current results) may grow between retries: only actions compare.
        body_differs = key.phase is Phase.ACTION and row.request_hash != digest
        if body_differs or row.endpoint != endpoint:
            self._count(endpoint, key.phase, "refused")
            return error_response(
                409,
                "idempotency_key_reused",
                f"{key.value} was first used with another body or endpoint",
            )
        if row.status_code is None:
            # Cannot happen: a key's claim and its answer share one commit.
            raise RuntimeError(f"{key.value} is taken but has no answer")
        if target is not None and row.status is EffectStatus.APPLIED and row.status_code == 202:
            # The orchestrator accepts only the current attempt's completion.
            await completions.refresh(conn, key.value, target)
        self.metrics.replays.labels(endpoint).inc()
        self._count(endpoint, key.phase, "replayed")
        return JSONResponse(row.response, row.status_code, headers={REPLAY_HEADER: "true"})

    async def _settle(
        self, conn: AsyncConnection, key: IdempotencyKey, status: EffectStatus, answer: Answer
    ) -> Answer:
        await store.settle(conn, key.value, status, answer.status_code, answer.body)
        return answer

    def _draw_faults(self, endpoint: str, phase: Phase) -> Injection:
        injection, fired = self.faults.draw(endpoint, phase)
        for rule in fired:
            self.metrics.faults_fired.labels(endpoint, rule.mode).inc()
        return injection

    def _effect(
        self, conn: AsyncConnection, key: IdempotencyKey, endpoint: str, body: Any, request: Request
    ) -> Effect:
        attempt = request.headers.get("X-Saga-Attempt", "")
        return Effect(
            conn=conn,
            key=key,
            endpoint=endpoint,
            body=body,
            attempt=int(attempt) if attempt.isdigit() else None,
            optimistic_attempts=self.optimistic_attempts,
            conflict_hook=self.metrics.conflict_counter,
        )

    def _count(self, endpoint: str, phase: Phase, outcome: str) -> None:
        self.metrics.effects.labels(endpoint, str(phase), outcome).inc()


def _injected_error(injection: Injection) -> Answer:
    when = "before" if injection.mode == "error_before_commit" else "after"
    body = error_body("fault_injected", f"injected failure {when} commit")
    return Answer(injection.status, body)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return await request.json()
    except ValueError:
        raise Rejected("invalid_json", "the request body is not valid JSON", status=422) from None
