"""The campaign's client: starts sagas at a fixed concurrency and follows each to rest.

It has to ride out what the campaign does to the system: an API answering
503 while the database is down, connections refused or cut. Every start
carries an ``Idempotency-Key`` of its own, sent again unchanged on every
retry, so a start whose answer was lost is never doubled (a replay answers
200 with the saga first created). A saga is followed until it is completed,
compensated or failed (parked for an operator); the :class:`Tally` counts
what the live display and the report show. A few sagas, chosen by the
schedule, are cancelled a moment after they start. With a
:class:`~orchestrator.check.history.Recorder`, every request about a saga
(start, read, cancel, retry, its history) is recorded, one operation per
attempt.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from orchestrator.check.history import PROCESS, Recorder, answer_type, error_type, observed
from orchestrator.check.schedule import CancelPlan, SagaPlan
from orchestrator.harness.processes import wait_until

RESTING = frozenset({"completed", "compensated", "failed"})
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class CampaignTimeout(Exception):
    """The campaign's time limit ran out."""


class ApiRefused(Exception):
    """The API refused a request for good (a 4xx that retrying cannot change)."""


@dataclass
class Tally:
    """Live counts of the campaign's sagas and of the client's troubles."""

    total: int = 0
    started: int = 0
    resting: Counter[str] = field(default_factory=Counter)
    start_replays: int = 0
    """Starts answered 200: the same key had already created the saga."""
    retries: Counter[str] = field(default_factory=Counter)
    """Requests retried, by reason (``503``, ``ConnectError``, ...)."""

    @property
    def running(self) -> int:
        """Started and not at rest yet."""
        return self.started - sum(self.resting.values())

    @property
    def progress(self) -> float:
        """Fraction of the sagas started."""
        return self.started / self.total if self.total else 1.0


class ApiClient:
    """The orchestrator's API, retried through outages until ``deadline``."""

    def __init__(
        self, base_url: str, deadline: float, tally: Tally, history: Recorder | None = None
    ) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=15.0)
        self.deadline = deadline
        self.tally = tally
        self.history = history
        self._jitter = random.Random()

    async def aclose(self) -> None:
        """Close the connections."""
        await self.http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        ok: Sequence[int] = (200,),
        record: Call | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send until the answer's status is in ``ok``; retry transient failures.

        With ``record``, each attempt is an operation of the history.
        """
        delay = 0.05
        while True:
            try:
                response = await self._send(method, path, record, kwargs)
            except httpx.TransportError as exc:
                reason = type(exc).__name__
            else:
                if response.status_code in ok:
                    return response
                if response.status_code not in _RETRY_STATUSES:
                    raise ApiRefused(
                        f"{method} {path} answered {response.status_code}: {response.text[:500]}"
                    )
                reason = str(response.status_code)
            self.tally.retries[reason] += 1
            if time.monotonic() + delay > self.deadline:
                raise CampaignTimeout(f"{method} {path} still failing ({reason}) at the time limit")
            await asyncio.sleep(delay * self._jitter.uniform(0.5, 1.5))
            delay = min(delay * 2, 2.0)

    async def _send(
        self, method: str, path: str, record: Call | None, kwargs: dict[str, Any]
    ) -> httpx.Response:
        if record is None or self.history is None:
            return await self.http.request(method, path, **kwargs)
        op = self.history.invoke(record.f, saga=record.saga, key=record.key)
        try:
            response = await self.http.request(method, path, **kwargs)
        except BaseException as exc:
            self.history.complete(op, error_type(exc), error=type(exc).__name__)
            raise
        kind = answer_type(response.status_code)
        value = observed(record.f, record.saga, _body(response)) if kind == "ok" else None
        error = None if kind == "ok" else response.text[:300]
        self.history.complete(op, kind, value=value, http_status=response.status_code, error=error)
        return response

    async def saga(self, saga_id: str) -> dict[str, Any]:
        """``GET /v1/sagas/{id}``."""
        response = await self.request("GET", f"/v1/sagas/{saga_id}", record=Call("read", saga_id))
        body: dict[str, Any] = response.json()
        return body

    async def events(self, saga_id: str) -> list[dict[str, Any]]:
        """``GET /v1/sagas/{id}/events``: the saga's history."""
        response = await self.request(
            "GET", f"/v1/sagas/{saga_id}/events", record=Call("history", saga_id)
        )
        items: list[dict[str, Any]] = response.json()["items"]
        return items


@dataclass(frozen=True)
class Call:
    """What a request is to the history: its function, its saga, a start's key."""

    f: str
    saga: str | None = None
    key: str | None = None


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class LoadDriver:
    """Starts ``plans`` with at most ``concurrency`` sagas not yet at rest."""

    def __init__(
        self,
        api: ApiClient,
        plans: Sequence[SagaPlan],
        concurrency: int,
        run_id: str,
        ceiling: Callable[[], float] = lambda: 1.0,
        cancels: Sequence[CancelPlan] = (),
    ) -> None:
        self.api = api
        #: The fraction of sagas that may be started now (see ``Chaos.ceiling``).
        self.ceiling = ceiling
        self.plans = plans
        self.concurrency = concurrency
        self.run_id = run_id
        self.tally = api.tally
        self.tally.total = len(plans)
        #: Plan number -> saga id, in the order sagas were created.
        self.ids: dict[int, str] = {}
        self.final: dict[str, str] = {}
        #: Plan number -> seconds after its start to cancel it.
        self.cancels = {c.number: c.after_s for c in cancels}
        self._queue: asyncio.Queue[SagaPlan] = asyncio.Queue()

    async def run(self) -> None:
        """Start every saga and follow each to rest."""
        for plan in self.plans:
            self._queue.put_nowait(plan)
        lanes = min(self.concurrency, len(self.plans))
        await asyncio.gather(*(self._lane(n) for n in range(lanes)))

    async def _lane(self, number: int) -> None:
        PROCESS.set(f"lane-{number}")
        # Past the time limit nothing new starts; the report counts what never did.
        while not self._queue.empty() and time.monotonic() < self.api.deadline:
            await wait_until(
                lambda: (
                    (self.tally.started + 1) / self.tally.total <= self.ceiling()
                    or time.monotonic() >= self.api.deadline
                ),
                interval_s=0.02,
            )
            if self._queue.empty():
                return
            plan = self._queue.get_nowait()
            saga_id = await self._start(plan)
            if plan.number in self.cancels:
                await self.cancel(saga_id, self.cancels[plan.number])
            self.final[saga_id] = await self.follow(saga_id)

    async def _start(self, plan: SagaPlan) -> str:
        key = f"saga-check-{self.run_id}-{plan.number:06d}"
        response = await self.api.request(
            "POST",
            "/v1/sagas",
            ok=(200, 201),
            json={"definition": plan.definition, "input": dict(plan.input)},
            headers={"Idempotency-Key": key},
            record=Call("start", key=key),
        )
        if response.status_code == 200:
            self.tally.start_replays += 1
        saga_id = str(response.json()["id"])
        self.ids[plan.number] = saga_id
        self.tally.started += 1
        return saga_id

    async def cancel(self, saga_id: str, after_s: float) -> None:
        """Cancel the saga ``after_s`` after its start (``409`` past its pivot is fine)."""
        await asyncio.sleep(after_s)
        await self.api.request(
            "POST", f"/v1/sagas/{saga_id}/cancel", ok=(200, 409), record=Call("cancel", saga_id)
        )

    async def follow(self, saga_id: str) -> str:
        """Poll until the saga is at rest (backing off as it takes longer); its status.

        At the time limit it gives up and returns the status it last saw.
        """
        delay = 0.1
        while True:
            await asyncio.sleep(delay)
            status = str((await self.api.saga(saga_id))["status"])
            if status in RESTING:
                self.tally.resting[status] += 1
                return status
            if time.monotonic() > self.api.deadline:
                return status
            delay = min(delay * 1.5, 1.0)

    async def repair(self, saga_id: str) -> str:
        """An operator's retry of a parked saga; follows it to rest again."""
        PROCESS.set(f"repair-{saga_id}")
        self.tally.resting["failed"] -= 1
        await self.api.request(
            "POST", f"/v1/sagas/{saga_id}/retry", ok=(200, 409), record=Call("retry", saga_id)
        )
        status = await self.follow(saga_id)
        self.final[saga_id] = status
        return status
