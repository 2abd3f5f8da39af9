"""Harm done on schedule: worker kills, a paused (zombie) worker, a database crash.

Events run one after the other, each when its fraction of the sagas has been
started (or at once when the load is over before it), so each one's figures
are its own; only a killed worker's restart goes on in the background (the
next event picks a worker that is up). What each event records is evidence
that it mattered, not just that it happened:

- a kill: the worker's calls the services had not answered yet (from the wire
  tap) and the sagas it held (its last ``saga_worker_held``). Every other kill
  is *aimed*: it waits (5 s at most) until the worker has a call in flight;
- a zombie: calls in flight when it froze, then after it wakes the writes the
  version check turned away (``saga_version_conflicts_total``) and the sagas
  it found taken over (``saga_leases_lost_total``), while the other workers
  count the takeovers (``saga_lease_takeovers_total``);
- a database crash: how long it was down and how often the client was
  answered 503 or refused meanwhile;
- a partition (:class:`~orchestrator.harness.proxy.PartitionProxy`: packets
  vanish, nothing is refused) of a worker from the database, both ways or
  only its answers, for longer than the lease: the calls in flight and the
  sagas held when it was cut, the calls it withheld because its lease had
  run out by its own clock (``saga_calls_withheld_total``), the calls it made
  after that (``saga_zombie_calls_total``, and the wire's own count of its
  requests from one lease after the cut to the heal: both must be 0), the
  database errors by which it noticed, the takeovers by the others and, after
  the heal, its writes fenced off; or of every worker from one service: the
  calls in flight when it was cut and the bytes held.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.check.faults import CampaignFaults
from orchestrator.check.fleet import Fleet
from orchestrator.check.load import Tally
from orchestrator.check.schedule import ChaosEvent
from orchestrator.harness.postgres import PgCluster
from orchestrator.harness.processes import ManagedProcess, wait_until
from orchestrator.harness.proxy import Cut

CONFLICTS = "saga_version_conflicts_total"
LEASES_LOST = "saga_leases_lost_total"
TAKEOVERS = "saga_lease_takeovers_total"
WITHHELD = "saga_calls_withheld_total"
ZOMBIE_CALLS = "saga_zombie_calls_total"
DB_ERRORS = "saga_database_errors_total"
#: Past the lease, what the worker's clock and the campaign's may differ by.
CLOCK_SLACK_S = 0.25


@dataclass
class ChaosLog:
    """What the chaos did, event by event."""

    kills: list[dict[str, Any]] = field(default_factory=list)
    zombies: list[dict[str, Any]] = field(default_factory=list)
    db_crashes: list[dict[str, Any]] = field(default_factory=list)
    broker_crashes: list[dict[str, Any]] = field(default_factory=list)
    consumer_kills: list[dict[str, Any]] = field(default_factory=list)
    partitions: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """Every event with its figures."""
        return {
            "kills": self.kills,
            "zombies": self.zombies,
            "db_crashes": self.db_crashes,
            "broker_crashes": self.broker_crashes,
            "consumer_kills": self.consumer_kills,
            "partitions": self.partitions,
        }


class Chaos:
    """Runs the schedule's chaos events against a fleet (and its private cluster)."""

    def __init__(
        self,
        events: Sequence[ChaosEvent],
        fleet: Fleet,
        cluster: PgCluster | None,
        tally: Tally,
        started_at: float,
        faults: CampaignFaults | None = None,
    ) -> None:
        self.events = events
        #: The campaign's fault rules: a killed service's board dies with it.
        self.faults = faults
        self.fleet = fleet
        self.cluster = cluster
        self.tally = tally
        self.started_at = started_at
        self.log = ChaosLog()
        self.current: str | None = None
        #: Killed workers on their way back; the next events do not wait for them.
        self._restarting: dict[str, asyncio.Task[None]] = {}
        self._next = 0

    def ceiling(self) -> float:
        """How far the load may go now: not past the next event while one is running.

        An event can take seconds (a zombie stays frozen for twice the lease);
        holding the starts at the next event's mark meanwhile keeps every event
        landing on a system under load, however fast the load would run alone.
        """
        if self.current is None or self._next >= len(self.events):
            return 1.0
        return self.events[self._next].at

    def _now(self) -> float:
        return round(time.monotonic() - self.started_at, 3)

    async def run(self, load_done: asyncio.Event) -> None:
        """Fire every event at its moment; returns when all have run."""
        for index, event in enumerate(self.events):

            def due(at: float = event.at) -> bool:
                return self.tally.progress >= at or load_done.is_set()

            await wait_until(due, interval_s=0.01)
            self.current = event.kind
            self._next = index + 1
            try:
                if event.kind == "kill":
                    await self._kill(event)
                elif event.kind == "zombie":
                    await self._zombie(event)
                elif event.kind == "partition":
                    await self._partition(event)
                elif event.kind == "broker_crash":
                    await self._broker_crash(event)
                elif event.kind == "consumer_kill":
                    await self._consumer_kill(event)
                else:
                    await self._db_crash(event)
            finally:
                self.current = None
        await asyncio.gather(*self._restarting.values())

    def _ready(self, worker: ManagedProcess) -> bool:
        return worker.alive and not worker.paused and worker.name not in self._restarting

    async def _pick(self, index: int) -> ManagedProcess:
        """Worker ``index`` if it is up, else the next one that is (waiting for a restart)."""
        workers = self.fleet.workers
        ordered = workers[index % len(workers) :] + workers[: index % len(workers)]
        if not await wait_until(lambda: any(map(self._ready, ordered)), timeout_s=180):
            raise RuntimeError("no running worker to act on")
        return next(w for w in ordered if self._ready(w))

    def _in_flight(self, worker: ManagedProcess) -> int:
        return self.fleet.in_flight(worker.name)

    async def _aim(self, worker: ManagedProcess, event: ChaosEvent) -> None:
        if event.aim:
            await wait_until(lambda: self._in_flight(worker) > 0, interval_s=0.005, timeout_s=5.0)

    async def _kill(self, event: ChaosEvent) -> None:
        worker = await self._pick(event.worker)
        figures = await self.fleet.scrape(worker)
        await self._aim(worker, event)
        # Nothing awaited from here to the signal: the count is the one it dies with.
        in_flight = self._in_flight(worker)
        at = self._now()
        worker.kill()
        record: dict[str, Any] = {
            "at_s": at,
            "worker": worker.name,
            "incarnation": worker.incarnation,
            "progress": round(self.tally.progress, 3),
            "aimed": event.aim,
            "calls_in_flight": in_flight,
            "sagas_held": int(figures.get("saga_worker_held", 0)),
            "restart_after_s": round(event.hold_s, 3),
        }
        self.log.kills.append(record)

        async def restart() -> None:
            try:
                await asyncio.sleep(event.hold_s)
                await self.fleet.restart(worker)
                record["ready_again_at_s"] = self._now()
            finally:
                self._restarting.pop(worker.name, None)

        self._restarting[worker.name] = asyncio.create_task(restart())

    async def _zombie(self, event: ChaosEvent) -> None:
        worker = await self._pick(event.worker)
        others = [w for w in self.fleet.workers if w is not worker]
        # Someone must be up to take its sagas over while it is frozen.
        if not await wait_until(lambda: any(map(self._ready, others)), timeout_s=180):
            raise RuntimeError("a zombie needs another worker to take its sagas over")
        before = await self.fleet.scrape(worker)
        takeovers_before = await self._takeovers(others)
        await self._aim(worker, event)
        in_flight = self._in_flight(worker)
        at = self._now()
        worker.pause()
        await asyncio.sleep(event.hold_s)
        worker.resume()
        resumed = self._now()
        # Give it time to finish what it had in hand and try to record it.
        await asyncio.sleep(max(2.0, self.fleet.lease_s))
        after = await self.fleet.scrape(worker)
        self.log.zombies.append(
            {
                "at_s": at,
                "resumed_at_s": resumed,
                "worker": worker.name,
                "paused_s": round(event.hold_s, 3),
                "lease_s": self.fleet.lease_s,
                "calls_in_flight": in_flight,
                "sagas_held": int(before.get("saga_worker_held", 0)),
                "stale_writes_rejected": int(after.get(CONFLICTS, 0) - before.get(CONFLICTS, 0)),
                "sagas_found_taken_over": int(
                    after.get(LEASES_LOST, 0) - before.get(LEASES_LOST, 0)
                ),
                "takeovers_by_others": int(await self._takeovers(others) - takeovers_before),
            }
        )

    async def _takeovers(self, workers: Sequence[ManagedProcess]) -> float:
        scraped = await asyncio.gather(*(self.fleet.scrape(w) for w in workers))
        return sum(s.get(TAKEOVERS, 0) for s in scraped)

    async def _db_crash(self, event: ChaosEvent) -> None:
        if self.cluster is None:
            raise RuntimeError("a database crash needs the campaign's own cluster")
        retries_before = sum(self.tally.retries.values())
        at = self._now()
        down, up = await self.cluster.crash_for(event.hold_s)
        record: dict[str, Any] = {
            "at_s": at,
            "progress": round(self.tally.progress, 3),
            "down_s": round(up - down, 3),
            "mode": "pg_ctl stop -m immediate",
        }
        self.log.db_crashes.append(record)
        # The client's retries while the database was down and just after.
        await asyncio.sleep(2.0)
        record["client_retries"] = sum(self.tally.retries.values()) - retries_before

    async def _broker_crash(self, event: ChaosEvent) -> None:
        broker, tap = self.fleet.broker, self.fleet.broker_tap
        if broker is None or tap is None:
            raise RuntimeError("a broker crash needs the campaign's own broker")
        in_flight = tap.in_flight()
        retries_before = sum(self.tally.retries.values())
        at = self._now()
        down, up = await broker.crash_for(event.hold_s)
        await tap.after_restart()
        self.log.broker_crashes.append(
            {
                "at_s": at,
                "progress": round(self.tally.progress, 3),
                "down_s": round(up - down, 3),
                "mode": "SIGKILL of every process of the node",
                "commands_in_flight": in_flight,
                "client_retries": sum(self.tally.retries.values()) - retries_before,
            }
        )

    async def _consumer_kill(self, event: ChaosEvent) -> None:
        """SIGKILL a broker participant while it holds a command (5 s at most to get one)."""
        assert event.cut is not None
        name = event.cut.split(":", 1)[1]
        tap = self.fleet.broker_tap
        process = self.fleet.participants[name]
        if tap is None or not process.alive:
            raise RuntimeError(f"{name} is not a running broker participant")

        def holding() -> int:
            return sum(1 for c in tap.calls if c.participant == name and c.status is None)

        if self.faults is not None:
            await self.faults.bury(name)  # first: nothing awaited between the aim and the kill
        if event.aim:
            await wait_until(lambda: holding() > 0, interval_s=0.005, timeout_s=5.0)
        in_flight = holding()
        at = self._now()
        process.kill()
        record: dict[str, Any] = {
            "at_s": at,
            "participant": name,
            "incarnation": process.incarnation,
            "progress": round(self.tally.progress, 3),
            "aimed": event.aim,
            "commands_unanswered": in_flight,
            "restart_after_s": round(event.hold_s, 3),
        }
        self.log.consumer_kills.append(record)
        await asyncio.sleep(event.hold_s)
        await self.fleet.restart_participant(name)
        if self.faults is not None:
            await self.faults.reinstall(name)
        record["ready_again_at_s"] = self._now()

    async def _partition(self, event: ChaosEvent) -> None:
        assert event.cut is not None
        if event.cut.startswith("participant:"):
            await self._cut_service(event, event.cut.split(":", 1)[1])
            return
        await self._cut_worker(event, "both" if event.cut == "db:both" else "to_client")

    async def _cut_worker(self, event: ChaosEvent, how: Cut) -> None:
        worker = await self._pick(event.worker)
        proxy = self.fleet.db_proxies.get(worker.name)
        if proxy is None:
            raise RuntimeError("a database partition needs the orchestrator on PostgreSQL")
        others = [w for w in self.fleet.workers if w is not worker]
        if not await wait_until(lambda: any(map(self._ready, others)), timeout_s=180):
            raise RuntimeError("a partition needs another worker to take its sagas over")
        tap = self.fleet.tap
        assert tap is not None
        before = await self.fleet.scrape(worker)
        takeovers_before = await self._takeovers(others)
        await self._aim(worker, event)
        in_flight = self._in_flight(worker)
        held_before = Counter(proxy.stats.held_bytes)
        at, cut_at = self._now(), time.monotonic()
        proxy.cut(how)
        # Every lease it holds was last written before the cut: one lease on, all ran out.
        await asyncio.sleep(self.fleet.lease_s + CLOCK_SLACK_S)
        sent_by_then = self.fleet.sent(worker.name)
        await asyncio.sleep(max(0.0, event.hold_s - (time.monotonic() - cut_at)))
        late_on_wire = self.fleet.sent(worker.name) - sent_by_then
        proxy.heal()
        healed = self._now()
        # Time to notice the heal and try to record what it had in hand.
        await asyncio.sleep(max(2.0, self.fleet.lease_s))
        after = await self.fleet.scrape(worker)

        def grew(name: str) -> int:
            return int(after.get(name, 0) - before.get(name, 0))

        self.log.partitions.append(
            {
                "at_s": at,
                "healed_at_s": healed,
                "cut": f"db:{how}",
                "worker": worker.name,
                "cut_s": round(event.hold_s, 3),
                "lease_s": self.fleet.lease_s,
                "calls_in_flight": in_flight,
                "sagas_held": int(before.get("saga_worker_held", 0)),
                "calls_withheld": grew(WITHHELD),
                "zombie_calls": grew(ZOMBIE_CALLS),
                "calls_on_wire_after_lease": late_on_wire,
                "database_errors": int(_total(after, DB_ERRORS) - _total(before, DB_ERRORS)),
                "bytes_held": dict(proxy.stats.held_bytes - held_before),
                "takeovers_by_others": int(await self._takeovers(others) - takeovers_before),
                "stale_writes_rejected": grew(CONFLICTS),
                "sagas_found_taken_over": grew(LEASES_LOST),
            }
        )

    async def _cut_service(self, event: ChaosEvent, service: str) -> None:
        proxy = self.fleet.service_proxies.get(service)
        if proxy is None:
            raise RuntimeError(f"no proxy in front of {service!r}: partitions are off")
        tap = self.fleet.tap
        assert tap is not None
        at = self._now()
        in_flight = tap.in_flight()
        held_before = sum(proxy.stats.held_bytes.values())
        proxy.cut("both")
        await asyncio.sleep(event.hold_s)
        proxy.heal()
        self.log.partitions.append(
            {
                "at_s": at,
                "healed_at_s": self._now(),
                "cut": f"participant:{service}",
                "worker": None,
                "cut_s": round(event.hold_s, 3),
                "lease_s": self.fleet.lease_s,
                "calls_in_flight": in_flight,
                "bytes_held": sum(proxy.stats.held_bytes.values()) - held_before,
            }
        )


def _total(figures: dict[str, float], name: str) -> float:
    """The sum of a labelled counter's series."""
    return sum(v for k, v in figures.items() if k == name or k.startswith(name + "{"))
