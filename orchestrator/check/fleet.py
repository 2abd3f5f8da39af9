"""The system under test as real processes: example services, one API, N workers.

- each example service: ``python -m participants.<name>`` on its own database,
  with in-service faults enabled;
- the API: ``saga serve --role api`` (the campaign's client talks to it; it is
  never killed, but it rides through the database crash);
- the workers: ``saga serve --role worker``, each reaching the services through
  its own relays of the :class:`~orchestrator.check.wire.WireTap`. These are
  the processes the campaign kills, restarts and pauses. They tell services
  to complete callback steps at the API (``SAGA_PUBLIC_URL``); completions
  go from the services to the API directly, not through the relays.

With partitions on, each worker reaches the orchestrator's database through a
:class:`~orchestrator.harness.proxy.PartitionProxy` of its own, and the relays
reach each service through one proxy per service, so the chaos can cut a
worker from the database or every worker from one service.

Workers' counters are scraped every second and right before any harm, so a
killed worker's last figures survive it (:class:`MetricsBook`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from orchestrator.check.broker_wire import BrokerTap
from orchestrator.check.evidence import WireCall
from orchestrator.check.scrapes import MetricsBook
from orchestrator.check.wire import WireTap
from orchestrator.harness.processes import ManagedProcess, clean_environment, saga_command
from orchestrator.harness.proxy import PartitionProxy
from orchestrator.harness.rabbitmq import RabbitNode
from orchestrator.transport.amqp import queue_health

SERVICES = ("orders", "payments", "inventory", "shipping")


class Fleet:
    """Starts, scrapes, restarts and stops every process of a campaign."""

    def __init__(
        self,
        workdir: Path,
        orchestrator_url: str,
        service_urls: dict[str, str],
        *,
        workers: int,
        lease_s: float,
        partitions: bool = False,
        broker: RabbitNode | None = None,
        broker_participants: frozenset[str] = frozenset(),
    ) -> None:
        self.workdir = workdir
        #: The private broker the participants in ``broker_participants`` are reached through.
        self.broker = broker
        self.broker_participants = broker_participants if broker is not None else frozenset()
        #: Each broker participant's command queue.
        self.queues = {name: f"saga-check.{name}" for name in sorted(self.broker_participants)}
        self.orchestrator_url = orchestrator_url
        self.book = MetricsBook()
        self.participants = {
            name: ManagedProcess(
                name,
                [
                    sys.executable,
                    "-m",
                    f"participants.{name}",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "{port}",
                    "--no-migrate",
                    "--no-seed",
                    "--log-level",
                    "warning",
                ],
                {
                    **clean_environment(),
                    "PARTICIPANT_DATABASE_URL": url,
                    "PARTICIPANT_ENABLE_FAULTS": "1",
                    "PARTICIPANT_DB_POOL_SIZE": "4",
                    "PARTICIPANT_DB_MAX_OVERFLOW": "4",
                    **self._consumer_env(name),
                },
                workdir,
            )
            for name, url in service_urls.items()
        }
        self.lease_s = lease_s
        self.worker_count = workers
        self.workers: list[ManagedProcess] = []
        self.api: ManagedProcess | None = None
        self.tap: WireTap | None = None
        self.broker_tap: BrokerTap | None = None
        #: Restarted workers that exited at start (the database was down).
        self.early_exits = 0
        self.partitions = partitions
        #: Worker name -> the proxy between it and the database (partitions on).
        self.db_proxies: dict[str, PartitionProxy] = {}
        #: Service name -> the proxy between the relays and it (partitions on).
        self.service_proxies: dict[str, PartitionProxy] = {}
        self._http = httpx.AsyncClient()

    def _consumer_env(self, name: str) -> dict[str, str]:
        if self.broker is None or name not in self.broker_participants:
            return {}
        return {
            "PARTICIPANT_AMQP_URL": self.broker.url(),
            "PARTICIPANT_AMQP_QUEUE": self.queues[name],
        }

    def _with_broker(self, routes: dict[str, list[str]]) -> dict[str, list[str]]:
        """``routes`` with each broker participant's address instead (the broker is its witness)."""
        if self.broker is None:
            return routes
        broker = self.broker.url()
        return {
            name: [f"{broker}?queue={self.queues[name]}"] if name in self.queues else urls
            for name, urls in routes.items()
        }

    def worker_of(self, pid: int) -> str | None:
        """The worker whose current incarnation has ``pid``."""
        for worker in self.workers:
            if worker.proc is not None and worker.proc.pid == pid:
                return worker.name
        return None

    def in_flight(self, worker: str | None = None) -> int:
        """Calls of ``worker`` (or anyone's) sent and not answered, over HTTP or the broker."""
        total = self.tap.in_flight(worker) if self.tap is not None else 0
        if self.broker_tap is not None:
            total += self.broker_tap.in_flight(worker)
        return total

    def sent(self, worker: str) -> int:
        """Calls ``worker`` has sent so far, over HTTP or the broker."""
        total = self.tap.sent[worker] if self.tap is not None else 0
        if self.broker_tap is not None:
            total += self.broker_tap.sent[worker]
        return total

    def wire_calls(self) -> list[WireCall]:
        """Every call the witnesses saw: the HTTP relays' and the broker's."""
        calls = list(self.tap.calls) if self.tap is not None else []
        if self.broker_tap is not None:
            calls += self.broker_tap.calls
        return calls

    def _orchestrator_env(
        self,
        participants: dict[str, list[str]],
        public_url: str | None = None,
        database_url: str | None = None,
    ) -> dict[str, str]:
        settings = {
            "DATABASE_URL": database_url or self.orchestrator_url,
            "PARTICIPANTS": json.dumps(participants),
            "ENABLE_FAULTS": "1",
            "LEASE_S": str(self.lease_s),
            "POLL_INTERVAL_S": "0.1",
            "FAULT_REFRESH_S": "0.25",
            "DATABASE_POOL_SIZE": "5",
            "LOG_LEVEL": "WARNING",
        }
        if public_url is not None:
            settings["PUBLIC_URL"] = public_url
        return {**clean_environment(), **{f"SAGA_{k}": v for k, v in settings.items()}}

    @property
    def participant_urls(self) -> dict[str, str]:
        """Each service's own base URL (not through a relay)."""
        return {name: p.url for name, p in self.participants.items()}

    async def start(self) -> None:
        """Services first, then the relays, the API and the workers; each waits for readiness."""
        for process in self.participants.values():
            process.start()
        await asyncio.gather(*(p.wait_ready() for p in self.participants.values()))
        if self.broker is not None:
            self.broker_tap = BrokerTap(
                self.broker, {q: name for name, q in self.queues.items()}, self.worker_of
            )
            await self.broker_tap.open()
            await self._consuming()
        self.tap = WireTap(await self._service_routes())
        direct = self._with_broker({name: [url] for name, url in self.participant_urls.items()})
        self.api = ManagedProcess(
            "api",
            [*saga_command(), "serve", "--role", "api", "--port", "{port}", "--no-migrate"],
            self._orchestrator_env(direct),
            self.workdir,
        )
        self.api.start()
        for index in range(self.worker_count):
            name = f"worker{index + 1}"
            routes = self._with_broker(await self.tap.open(name))
            self.workers.append(
                ManagedProcess(
                    name,
                    [
                        *saga_command(),
                        "serve",
                        "--role",
                        "worker",
                        "--port",
                        "{port}",
                        "--no-migrate",
                    ],
                    # Callback steps are completed at the API, which is never killed.
                    self._orchestrator_env(
                        routes, public_url=self.api.url, database_url=await self._db_route(name)
                    ),
                    self.workdir,
                )
            )
        for worker in self.workers:
            worker.start()
        await asyncio.gather(self.api.wait_ready(), *(w.wait_ready() for w in self.workers))

    async def _consuming(self, timeout_s: float = 60.0) -> None:
        """Until every broker participant consumes its queue (commands would wait otherwise)."""
        assert self.broker is not None
        deadline = time.monotonic() + timeout_s
        for name, queue in self.queues.items():
            url = f"{self.broker.url()}?queue={queue}"
            while (await queue_health(url))["health"] != "up":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} never consumed its queue {queue}")
                await asyncio.sleep(0.2)

    async def restart_participant(self, name: str, timeout_s: float = 120.0) -> None:
        """Start service ``name`` again and wait until it answers (and consumes its queue)."""
        process = self.participants[name]
        process.start(same_port=True)  # the relays, the API and the faults know its address
        await process.wait_ready(timeout_s=timeout_s)

    async def _service_routes(self) -> dict[str, str]:
        """Where the relays reach each service: directly, or through its proxy."""
        if not self.partitions:
            return self.participant_urls
        routes = {}
        for name, url in self.participant_urls.items():
            target = httpx.URL(url)
            proxy = PartitionProxy((target.host, target.port or 80), name=name)
            await proxy.start()
            self.service_proxies[name] = proxy
            routes[name] = f"http://127.0.0.1:{proxy.port}"
        return routes

    async def _db_route(self, worker: str) -> str | None:
        """The database URL of ``worker`` through a proxy of its own (None: the direct one)."""
        url = make_url(self.orchestrator_url)
        if not self.partitions or url.get_backend_name() != "postgresql":
            return None
        proxy = PartitionProxy((url.host or "127.0.0.1", url.port or 5432), name=worker)
        await proxy.start()
        self.db_proxies[worker] = proxy
        return url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)

    async def scrape(self, process: ManagedProcess) -> dict[str, float]:
        """Scrape ``process`` now and keep the figures (the latest known if it cannot answer)."""
        self.book.record(process, await process.scrape(self._http))
        return self.book.latest(process)

    async def scrape_forever(self, interval_s: float = 1.0) -> None:
        """Keep every worker's latest counters (until cancelled)."""
        while True:
            await asyncio.gather(*(self.scrape(w) for w in self.workers))
            await asyncio.sleep(interval_s)

    async def restart(self, worker: ManagedProcess, timeout_s: float = 180.0) -> None:
        """Start ``worker`` again (a new incarnation, the same relays) and wait until ready.

        A worker started while the database is down exits; like any supervisor,
        start it again until it stays up.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            worker.start()
            try:
                await worker.wait_ready(timeout_s=max(1.0, deadline - time.monotonic()))
                return
            except RuntimeError:
                self.early_exits += 1
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(1.0)

    async def ensure_workers(self) -> None:
        """Restart any worker that is not running and resume any that is paused."""
        for worker in self.workers:
            if worker.paused:
                worker.resume()
            if not worker.alive:
                await self.restart(worker)

    def problems(self) -> dict[str, list[str]]:
        """Lines reporting a traceback in any process's logs, by log file."""
        found: dict[str, list[str]] = {}
        for log in sorted(self.workdir.glob("*.log")):
            lines = [
                line for line in log.read_text(errors="replace").splitlines() if "Traceback" in line
            ]
            if lines:
                found[log.name] = lines
        return found

    async def stop(self) -> None:
        """Stop workers, then the API, then the services; close the relays."""
        await asyncio.gather(*(w.stop() for w in self.workers))
        if self.api is not None:
            await self.api.stop()
        await asyncio.gather(*(p.stop() for p in self.participants.values()))
        if self.tap is not None:
            await self.tap.close()
        if self.broker_tap is not None:
            await self.broker_tap.close()
        for proxy in [*self.db_proxies.values(), *self.service_proxies.values()]:
            await proxy.close()
        with contextlib.suppress(Exception):
            await self._http.aclose()
