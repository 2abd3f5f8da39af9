"""A consistency campaign from start to verdict.

Theory of operation:

1. *Setup* — databases (see :mod:`~orchestrator.check.databases`) migrated and
   seeded with the schedule's world; the services, the API and the workers as
   real processes; the definitions registered; the fault rules installed at
   the orchestrator's transport and inside every service.
2. *Load* — the sagas start at the requested concurrency while the chaos
   events fire at their fraction of sagas started.
3. *Drain* — once every saga has started and the chaos is over, the fault
   rules are read (for their counts) and removed while the workers are frozen
   for an instant, and every saga is followed to rest.
4. *Repair* — sagas parked as ``failed`` (a compensation or a pivot that ran
   out of retries under the faults) get what an operator would give them: one
   ``POST /v1/sagas/{id}/retry``.
5. *Quiet* — every worker running, no call in flight on the wire for a few
   seconds, so no late effect can land after the evidence is read.
6. *Verify* — evidence collected over HTTP, the invariants checked, the
   client's recorded history (``history.jsonl`` in the workdir: every start,
   read, cancel and retry) checked, the report written.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import httpx

from orchestrator.check import databases, report
from orchestrator.check.assemble import assemble
from orchestrator.check.chaos import Chaos
from orchestrator.check.collect import Collected, bounded, collect
from orchestrator.check.config import CampaignConfig, definition
from orchestrator.check.evidence import DefinitionInfo, InvariantResult
from orchestrator.check.faults import CampaignFaults
from orchestrator.check.fleet import Fleet
from orchestrator.check.history import Recorder
from orchestrator.check.history_check import Verdict, check_history, live_anomalies
from orchestrator.check.invariants import verify
from orchestrator.check.load import ApiClient, LoadDriver, Tally
from orchestrator.check.progress import Progress
from orchestrator.check.schedule import Plan, build_schedule
from orchestrator.harness.processes import wait_until
from orchestrator.harness.rabbitmq import RabbitNode
from orchestrator.settings import DEFAULT_HOME

QUIET_S = 3.0


class Campaign:
    """One campaign; use as ``async with Campaign(config) as c: result = await c.run()``."""

    def __init__(self, config: CampaignConfig, stream: TextIO | None = None) -> None:
        self.config = config
        self.stream = stream or sys.stderr
        self.run_id = uuid.uuid4().hex[:8]
        self.definitions = {
            name: DefinitionInfo.from_json(definition(name)) for name in config.definitions
        }
        self.schedule = build_schedule(
            Plan(
                seed=config.seed,
                sagas=config.sagas,
                definitions=self.definitions,
                fault_rate=config.fault_rate,
                transport_modes=config.transport_modes,
                service_modes=config.service_modes,
                workers=config.workers,
                kills=config.kills,
                zombies=config.zombies,
                db_crashes=config.db_crashes,
                lease_s=config.lease_s,
                cancel_rate=config.cancel_rate,
                partitions=config.partitions,
                broker_crashes=config.broker_crashes,
                consumer_kills=config.consumer_kills,
                broker_participants=config.broker_participants,
            )
        )
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        self.workdir = (
            config.workdir or DEFAULT_HOME / "check" / f"{stamp}-{self.run_id}"
        ).resolve()
        self.report_path = config.report_path or self.workdir / "report.json"
        self.started_at = time.monotonic()
        self.tally = Tally()
        self.timings: dict[str, float] = {}
        self.dbs: databases.Databases | None = None
        self.fleet: Fleet | None = None
        self.broker: RabbitNode | None = None
        self.history = Recorder(self.workdir / "history.jsonl")
        self.history_verdict: Verdict | None = None
        self.api = ApiClient(
            "http://127.0.0.1", self.started_at + config.time_limit_s, self.tally, self.history
        )
        self.driver = LoadDriver(
            self.api,
            self.schedule.sagas,
            config.concurrency,
            self.run_id,
            cancels=self.schedule.cancels,
        )
        self.chaos: Chaos | None = None
        self.faults: CampaignFaults | None = None
        self.repaired: Counter[str] = Counter()

    @contextlib.contextmanager
    def _timed(self, phase: str) -> Iterator[None]:
        began = time.monotonic()
        try:
            yield
        finally:
            self.timings[phase] = round(time.monotonic() - began, 3)

    def say(self, text: str) -> None:
        """A line for the person watching."""
        print(text, file=self.stream, flush=True)

    async def __aenter__(self) -> Campaign:
        try:
            await self.setup()
        except BaseException:
            await self.teardown()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.teardown()

    async def setup(self) -> None:
        """Databases, processes, definitions and fault rules (phase 1)."""
        with self._timed("setup"):
            self.workdir.mkdir(parents=True, exist_ok=True)
            self.say(f"saga check {self.run_id}: logs in {self.workdir}")
            self.dbs = await databases.prepare(
                self.run_id,
                self.workdir,
                database_url=self.config.database_url,
                own_cluster=self.config.db_crashes > 0,
            )
            self.say(f"data: {self.dbs.description}")
            await databases.migrate_and_seed(self.dbs, self.schedule.world)
            if self.config.broker_participants:
                self.broker = RabbitNode(Path(tempfile.mkdtemp(prefix="saga-check-broker-")))
                await asyncio.to_thread(self.broker.start)
                self.say(
                    f"broker: private RabbitMQ node on 127.0.0.1:{self.broker.port} for "
                    f"{', '.join(self.config.broker_participants)}"
                )
            self.fleet = Fleet(
                self.workdir,
                self.dbs.orchestrator_url,
                self.dbs.service_urls,
                workers=self.config.workers,
                lease_s=self.config.lease_s,
                partitions=self.config.partitions > 0,
                broker=self.broker,
                broker_participants=frozenset(self.config.broker_participants),
            )
            await self.fleet.start()
            assert self.fleet.api is not None
            self.api.http.base_url = httpx.URL(self.fleet.api.url)
            for name in self.config.definitions:
                await self.api.request(
                    "POST", "/v1/definitions", ok=(200, 201), json=definition(name)
                )
            self.faults = CampaignFaults(self.api, self.fleet.participant_urls, self.schedule.rules)
            await self.faults.install()
            self.chaos = Chaos(
                self.schedule.chaos,
                self.fleet,
                self.dbs.cluster,
                self.tally,
                self.started_at,
                self.faults,
            )
            self.driver.ceiling = self.chaos.ceiling

    async def run(self) -> dict[str, Any]:
        """Phases 2 to 6; returns the report (also written to ``report_path``)."""
        assert self.fleet is not None
        assert self.chaos is not None
        assert self.faults is not None
        progress = Progress(
            self.stream,
            self.tally,
            self.chaos,
            self.faults.count,
            kills=self.config.kills,
            zombies=self.config.zombies,
            db_crashes=self.config.db_crashes,
            partitions=self.config.partitions,
            broker_crashes=self.config.broker_crashes,
            consumer_kills=self.config.consumer_kills,
            violations=self._live_violations,
        )
        background = [
            asyncio.create_task(self.fleet.scrape_forever()),
            asyncio.create_task(progress.run()) if self.config.progress else None,
        ]
        try:
            await self._load_and_drain(progress)
            progress.phase = "repair"
            with self._timed("repair"):
                parked = [i for i, status in self.driver.final.items() if status == "failed"]
                self.repaired = Counter(await bounded(parked, self.driver.repair))
            progress.phase = "quiet"
            with self._timed("quiet"):
                await self._quiesce()
        finally:
            for task in background:
                if task is not None:
                    task.cancel()
            await asyncio.gather(*(t for t in background if t is not None), return_exceptions=True)
        self.api.deadline = time.monotonic() + 600
        with self._timed("collect"):
            collected = await self._collect()
        with self._timed("verify"):
            results = verify(collected.evidence)
            self.history_verdict = check_history(self.history.entries)
            results += self.history_verdict.results()
        result = await self._report(collected, results)
        report.write(result, self.report_path)
        return result

    async def _live_violations(self) -> int:
        # On a copy, in a thread: the loop keeps serving the load meanwhile.
        return await asyncio.to_thread(live_anomalies, list(self.history.entries))

    async def _load_and_drain(self, progress: Progress) -> None:
        assert self.chaos is not None
        load_done = asyncio.Event()

        async def load() -> None:
            try:
                await self.driver.run()
            finally:
                load_done.set()

        loading = asyncio.create_task(load())
        try:
            with self._timed("load"):
                await self.chaos.run(load_done)
                await wait_until(lambda: self.tally.started >= self.tally.total or loading.done())
                await self._clear_faults()
            progress.phase = "drain"
            with self._timed("drain"):
                await loading
        finally:
            if not loading.done():
                loading.cancel()
                await asyncio.gather(loading, return_exceptions=True)

    async def _clear_faults(self) -> None:
        # Counts read while workers still call would miss the firings between the
        # read and the removal: freeze the workers (well inside their lease) for it.
        assert self.fleet is not None
        assert self.faults is not None
        frozen = [w for w in self.fleet.workers if w.alive and not w.paused]
        for worker in frozen:
            worker.pause()
        try:
            await self.faults.clear()
        finally:
            for worker in frozen:
                worker.resume()

    async def _quiesce(self) -> None:
        assert self.fleet is not None
        fleet = self.fleet
        await fleet.ensure_workers()
        quiet_since = time.monotonic()

        def quiet() -> bool:
            nonlocal quiet_since
            if fleet.in_flight():
                quiet_since = time.monotonic()
            return time.monotonic() - quiet_since >= QUIET_S

        await wait_until(quiet, interval_s=0.1, timeout_s=60)

    async def verify_now(self) -> tuple[Collected, list[InvariantResult]]:
        """Collect the evidence as it is now and check it (no load, no chaos)."""
        collected = await self._collect()
        return collected, verify(collected.evidence)

    async def _collect(self) -> Collected:
        """Every started saga's evidence: the API's view, the services' ledgers, the wire."""
        assert self.fleet is not None
        return await collect(
            self.api,
            self.driver.ids.values(),
            self.fleet.participant_urls,
            self.definitions,
            world=self.schedule.world,
            wire=self.fleet.wire_calls(),
        )

    async def _report(self, collected: Collected, results: list[InvariantResult]) -> dict[str, Any]:
        assert self.fleet is not None
        for worker in self.fleet.workers:  # their counters as they end
            await self.fleet.scrape(worker)
        self.timings["total"] = round(time.monotonic() - self.started_at, 3)
        return assemble(self, collected, results)

    async def teardown(self) -> None:
        """Stop every process; drop throwaway databases (unless kept) and the private cluster."""
        if self.fleet is not None:
            await self.fleet.stop()
        if self.broker is not None:
            await asyncio.to_thread(self.broker.destroy)
        await self.api.aclose()
        self.history.close()
        if self.dbs is not None:
            if self.config.keep_databases and self.dbs.cluster is None:
                self.say(f"databases kept: {', '.join(self.dbs.created)}")
            else:
                await databases.drop(self.dbs)


async def run_campaign(config: CampaignConfig, stream: TextIO | None = None) -> dict[str, Any]:
    """Run a whole campaign and return its report (see :class:`Campaign`)."""
    async with Campaign(config, stream) as campaign:
        return await campaign.run()
