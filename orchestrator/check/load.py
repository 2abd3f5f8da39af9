"""The campaign's client: starts sagas at a fixed concurrency and follows each to rest.

It has to ride out what the campaign does to the system: an API answering
503 while the database is down, connections refused or cut. Every start
carries an ``Idempotency-Key`` of its own, sent again unchanged on every
retry, so a start whose answer was lost is never doubled (a replay answers
200 with the saga first created). A saga is followed until it is completed,
compensated or failed (parked for an operator); the :class:`Tally` counts
what the live display and the report show.
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

from orchestrator.check.schedule import SagaPlan
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

    def __init__(self, base_url: str, deadline: float, tally: Tally) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=15.0)
        self.deadline = deadline
        self.tally = tally
        self._jitter = random.Random()

    async def aclose(self) -> None:
        """Close the connections."""
        await self.http.aclose()

    async def request(
        self, method: str, path: str, *, ok: Sequence[int] = (200,), **kwargs: Any
    ) -> httpx.Response:
        """Send until the answer's status is in ``ok``; retry transient failures."""
        delay = 0.05
        while True:
            try:
                response = await self.http.request(method, path, **kwargs)
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

    async def saga(self, saga_id: str) -> dict[str, Any]:
        """``GET /v1/sagas/{id}``."""
        body: dict[str, Any] = (await self.request("GET", f"/v1/sagas/{saga_id}")).json()
        return body


class LoadDriver:
    """Starts ``plans`` with at most ``concurrency`` sagas not yet at rest."""

    def __init__(
        self,
        api: ApiClient,
        plans: Sequence[SagaPlan],
        concurrency: int,
        run_id: str,
        ceiling: Callable[[], float] = lambda: 1.0,
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
        self._queue: asyncio.Queue[SagaPlan] = asyncio.Queue()

    async def run(self) -> None:
        """Start every saga and follow each to rest."""
        for plan in self.plans:
            self._queue.put_nowait(plan)
        await asyncio.gather(*(self._lane() for _ in range(min(self.concurrency, len(self.plans)))))

    async def _lane(self) -> None:
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
            self.final[saga_id] = await self.follow(saga_id)

    async def _start(self, plan: SagaPlan) -> str:
        response = await self.api.request(
            "POST",
            "/v1/sagas",
            ok=(200, 201),
            json={"definition": plan.definition, "input": dict(plan.input)},
            headers={"Idempotency-Key": f"saga-check-{self.run_id}-{plan.number:06d}"},
        )
        if response.status_code == 200:
            self.tally.start_replays += 1
        saga_id = str(response.json()["id"])
        self.ids[plan.number] = saga_id
        self.tally.started += 1
        return saga_id

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
        self.tally.resting["failed"] -= 1
        await self.api.request("POST", f"/v1/sagas/{saga_id}/retry", ok=(200, 409))
        status = await self.follow(saga_id)
        self.final[saga_id] = status
        return status
