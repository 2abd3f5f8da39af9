"""Completion by callback: answer ``202`` now, tell the orchestrator the outcome later.

An action declared with ``callback=True`` and called with the orchestrator's
``X-Saga-Callback-Url`` and ``X-Saga-Callback-Token`` headers applies its
effect as usual, but answers ``202 Accepted`` and records, in the same
transaction, the completion it owes (``participant_completions``). A business
"no" is still answered at once (409): only an applied effect is completed later.

The :class:`Completer`, a background task of the service, sends each pending
completion (``POST`` to the given URL, with the token) until the orchestrator
answers 2xx (``delivered``) or a definite 4xx (``refused``; 409 means the step
stopped waiting or was completed otherwise). Network errors, 5xx, 408 and 429
are retried with exponential backoff. The rows are the only state: a restarted
service resumes every pending completion at start. Several replicas of one
service may send the same completion twice; the orchestrator answers a
repeated completion 200 and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated

import httpx
from fastapi import APIRouter, Query
from pydantic import BaseModel

from participants.kit import completions
from participants.kit.completions import CallbackTarget, Completion
from participants.kit.database import Database
from participants.kit.metrics import KitMetrics
from participants.kit.schema import CompletionStatus, utcnow
from participants.kit.settings import ParticipantSettings

logger = logging.getLogger(__name__)

CALLBACK_URL_HEADER = "X-Saga-Callback-Url"
CALLBACK_TOKEN_HEADER = "X-Saga-Callback-Token"
ATTEMPT_HEADER = "X-Saga-Attempt"

#: Client errors worth another try: the orchestrator may answer differently later.
_TRANSIENT_4XX = frozenset({408, 425, 429})
_BATCH = 100


def callback_target(headers: Mapping[str, str]) -> CallbackTarget | None:
    """The completion target a call asks for, or None when it wants a plain answer."""
    url, token = headers.get(CALLBACK_URL_HEADER), headers.get(CALLBACK_TOKEN_HEADER)
    if not url or not token:
        return None
    attempt = headers.get(ATTEMPT_HEADER, "")
    return CallbackTarget(url, token, int(attempt) if attempt.isdigit() else None)


def accepted_body(key: str) -> dict[str, object]:
    """What a ``202`` says: the outcome follows by callback."""
    return {"accepted": True, "completion": "callback", "key": key}


@dataclass
class Completer:
    """Sends the completions a service owes, from its database, until each is settled."""

    db: Database
    settings: ParticipantSettings
    metrics: KitMetrics
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _in_flight: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None
    _http: httpx.AsyncClient | None = None

    def start(self) -> None:
        """Start sending (pending completions of an earlier run included)."""
        self._http = httpx.AsyncClient(timeout=self.settings.callback_timeout_ms / 1000)
        self._task = asyncio.create_task(self._run(), name="kit-completer")

    def wake(self) -> None:
        """Look for due completions now (a new one was just committed)."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop sending; what is still pending stays in the database for the next start."""
        tasks = [t for t in (self._task, *self._in_flight.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()

    async def _run(self) -> None:
        idle_s = self.settings.callback_poll_ms / 1000
        while True:
            self._wake.clear()
            wait_s = idle_s
            try:
                async with self.db.read() as conn:
                    rows = await completions.pending(conn, _BATCH)
            except Exception:  # the database may be briefly away: look again later
                logger.exception("cannot read pending completions")
                rows = []
            now = utcnow()
            for row in rows:
                if row.next_at > now:
                    wait_s = min(wait_s, (row.next_at - now).total_seconds())
                    break
                if row.key not in self._in_flight:
                    self._send_soon(row)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(wait_s, 0.01))

    def _send_soon(self, row: Completion) -> None:
        task = asyncio.create_task(self._deliver(row))
        self._in_flight[row.key] = task
        task.add_done_callback(lambda _t: self._done(row.key))

    def _done(self, key: str) -> None:
        self._in_flight.pop(key, None)
        self._wake.set()  # a refresh may have re-armed it meanwhile

    async def _deliver(self, row: Completion) -> None:
        assert self._http is not None
        status: int | None = None
        error: str | None = None
        try:
            response = await self._http.post(
                row.callback_url, json=row.body, headers={CALLBACK_TOKEN_HEADER: row.token}
            )
            status = response.status_code
            if status >= 300:
                error = response.text[:500]
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        outcome, next_at = self._judge(row, status)
        self.metrics.completions.labels(_label(outcome, status)).inc()
        if outcome is CompletionStatus.REFUSED:
            logger.warning("completion of %s refused (%s): %s", row.key, status, error)
        try:
            async with self.db.transaction() as conn:
                await completions.record(
                    conn, row, outcome, http_status=status, error=error, next_at=next_at
                )
        except Exception:  # not recorded: it stays pending and is sent again (harmless)
            logger.exception("cannot record the completion of %s", row.key)

    def _judge(self, row: Completion, status: int | None) -> tuple[CompletionStatus, datetime]:
        now = utcnow()
        if status is not None and 200 <= status < 300:
            return CompletionStatus.DELIVERED, now
        if status is not None and 400 <= status < 500 and status not in _TRANSIENT_4XX:
            return CompletionStatus.REFUSED, now
        return CompletionStatus.PENDING, now + self._backoff(row.tries + 1)

    def _backoff(self, tries: int) -> timedelta:
        first = self.settings.callback_backoff_ms / 1000
        ceiling = self.settings.callback_max_backoff_ms / 1000
        delay = min(ceiling, first * 2 ** min(tries - 1, 30))
        # Jitter, so that completions failed by one outage do not all return at once.
        return timedelta(seconds=delay * random.uniform(0.5, 1.0))


def _label(outcome: CompletionStatus, status: int | None) -> str:
    if outcome is not CompletionStatus.PENDING:
        return str(outcome)
    return "retry_network" if status is None else "retry_status"


class CallbackEntry(BaseModel):
    """One completion the service owed and what became of it."""

    key: str
    saga_id: str
    step: str
    status: str
    attempt: int | None
    tries: int
    http_status: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


def callbacks_router(db: Database) -> APIRouter:
    """``GET /_callbacks``: every completion this service owed, delivered or not."""
    router = APIRouter(tags=["kit"])

    @router.get("/_callbacks")
    async def read_callbacks(
        saga_id: Annotated[str | None, Query(description="Only this saga's completions.")] = None,
    ) -> list[CallbackEntry]:
        async with db.read() as conn:
            rows = await completions.listing(conn, saga_id)
        return [
            CallbackEntry(
                key=row.key,
                saga_id=row.saga_id,
                step=row.step,
                status=str(row.status),
                attempt=row.attempt,
                tries=row.tries,
                http_status=row.http_status,
                last_error=row.last_error,
                created_at=row.created_at,
                updated_at=row.updated_at,
            )
            for row in rows
        ]

    return router
