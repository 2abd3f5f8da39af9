"""The four ways of running the benchmark saga that are compared.

- ``plain``: this process calls the three steps in turn with httpx; nothing is
  persisted but the participant's own rows;
- ``orchestrator``: one ``saga serve`` process; sagas are started over REST;
- ``broker``: the same, but ``saga serve`` reaches the participant over AMQP
  (RabbitMQ): a command message to the participant's queue, a reply back;
- ``dbos``: the same three steps as a DBOS Transact workflow in a service of
  its own (:mod:`orchestrator.bench.dbos_service`).

Each mode knows the process that drives its sagas (whose CPU time is
measured) and the database where it keeps their state (whose commits are
counted).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Protocol

import asyncpg
import httpx

from orchestrator.bench import services
from orchestrator.bench.load import Ended
from orchestrator.harness.processes import ManagedProcess, parse_metrics
from orchestrator.machine.state import FINAL_STATUSES, SagaStatus
from orchestrator.settings import Settings
from orchestrator.transport.pool import StackPoolTransport

MODES = ("plain", "orchestrator", "broker", "dbos")

_AT_REST = sorted({*FINAL_STATUSES, SagaStatus.FAILED})

#: Connections to the participant, as the orchestrator keeps by default.
PARTICIPANT_CONNECTIONS: int = Settings.model_fields["http_connections_per_participant"].default


def http_client(base_url: str, connections: int) -> httpx.AsyncClient:
    """httpx on the orchestrator's own connection pool, up to ``connections`` at once.

    Every mode calls the participant through the same HTTP stack, so the
    comparison measures what each adds around the calls, not httpx's pool.
    """
    transport = StackPoolTransport(connections)
    return httpx.AsyncClient(base_url=base_url, timeout=60, transport=transport)


class Mode(Protocol):
    """One way of running the benchmark saga."""

    name: str
    #: The database holding the sagas' state (None: nothing persisted).
    state_database: str | None

    @property
    def driver_pid(self) -> int | None:
        """The process that drives the sagas (None: this one)."""

    async def start(self) -> None:
        """Start its processes."""

    async def stop(self) -> None:
        """Stop its processes."""

    async def run_one(self) -> Ended:
        """Start one saga and return when the client has seen it end."""

    async def own_commits(self) -> float | None:
        """The driver's own count of committed write transactions, if it keeps one."""


class Plain:
    """The chain of three calls, made by this process, nothing persisted."""

    name = "plain"
    state_database: str | None = None
    driver_pid: int | None = None

    def __init__(self, participant_url: str) -> None:
        self._participant_url = participant_url
        self._http: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._http = http_client(self._participant_url, PARTICIPANT_CONNECTIONS)

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def run_one(self) -> Ended:
        assert self._http is not None
        key = uuid.uuid4().hex
        began = time.perf_counter()
        for n in range(1, services.STEPS + 1):
            response = await self._http.post(
                f"/step/{n}", headers={"Idempotency-Key": f"{key}:{n}"}
            )
            if response.status_code != 200:
                return Ended(False, time.perf_counter() - began)
        return Ended(True, time.perf_counter() - began)

    async def own_commits(self) -> float | None:
        return None


class EndWatcher:
    """Sees orchestrated sagas end by reading their rows, without adding commits.

    Every ``poll_s`` while sagas are pending, one indexed query asks which of
    them are at rest, in a read-only transaction ended by ROLLBACK (counted
    by PostgreSQL as a rollback, not a commit). A saga's end time is its
    row's ``updated_at``, written by the orchestrator from the same system
    clock as the client's start time, so the poll's period delays the next
    start but not the measured latency. That end time is taken just before
    the final write, so it leaves out that write's commit; the time of the
    poll that saw the end is kept too, as an upper bound.
    """

    def __init__(self, dsn: str, poll_s: float) -> None:
        self._dsn = dsn
        self._poll_s = poll_s
        self._pending: dict[str, asyncio.Future[tuple[str, float, float]]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None

    async def open(self) -> None:
        """Connect and start polling."""
        self._conn = await asyncpg.connect(self._dsn)
        self._task = asyncio.create_task(self._poll_forever())

    async def close(self) -> None:
        """Stop polling and disconnect."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._conn is not None:
            await self._conn.close()

    async def wait(self, saga_id: str) -> tuple[str, float, float]:
        """Once the saga is at rest: its status, its row's end time and when it was seen
        (epoch seconds)."""
        future: asyncio.Future[tuple[str, float, float]] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending[saga_id] = future
        self._wake.set()
        return await future

    async def _poll_forever(self) -> None:
        assert self._conn is not None
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
            await asyncio.sleep(self._poll_s)
            transaction = self._conn.transaction(readonly=True)
            await transaction.start()
            try:
                rows = await self._conn.fetch(
                    "SELECT id::text, status, extract(epoch FROM updated_at)::float8 FROM sagas "
                    "WHERE id = ANY($1::uuid[]) AND status = ANY($2::text[])",
                    list(self._pending),
                    _AT_REST,
                )
            finally:
                await transaction.rollback()
            seen = time.time()
            for saga_id, status, ended_at in rows:
                future = self._pending.pop(saga_id)
                if not future.done():
                    future.set_result((status, ended_at, seen))


class _ChildDriven:
    """A mode whose sagas a child process drives, reached over HTTP."""

    process: ManagedProcess
    _http: httpx.AsyncClient | None

    @property
    def driver_pid(self) -> int | None:
        assert self.process.proc is not None
        return self.process.proc.pid

    async def _close(self) -> None:
        """Close the client, then stop the process."""
        if self._http is not None:
            await self._http.aclose()
        await self.process.stop()


class Orchestrator(_ChildDriven):
    """One ``saga serve`` process; sagas started over its REST API."""

    name = "orchestrator"

    def __init__(
        self,
        workdir: Path,
        database_dsn: str,
        database_name: str,
        participant_url: str,
        poll_s: float,
        in_flight: int = 64,
    ) -> None:
        self.process = services.saga_serve(self.name, workdir, database_dsn, participant_url)
        self.state_database: str | None = database_name
        self._watcher = EndWatcher(database_dsn, poll_s)
        self._in_flight = in_flight
        self._http: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self.process.start()
        await self.process.wait_ready()
        await services.register_definition(self.process.url)
        self._http = http_client(self.process.url, self._in_flight)
        await self._watcher.open()

    async def stop(self) -> None:
        await self._watcher.close()
        await self._close()

    async def run_one(self) -> Ended:
        return await start_and_watch(self._http, self._watcher)

    async def own_commits(self) -> float | None:
        assert self._http is not None
        return await own_commits(self._http, self.process)


class OverBroker(Orchestrator):
    """One ``saga serve`` process calling the participant over AMQP; sagas started over REST.

    ``participant_url`` is the participant's broker address
    (``amqp://...?queue=...``), whose queue the participant consumes. The
    client's side is the HTTP orchestrator's: only the calls to the
    participant change.
    """

    name = "broker"


async def start_and_watch(http: httpx.AsyncClient | None, watcher: EndWatcher) -> Ended:
    """Start one benchmark saga over REST and wait until ``watcher`` sees it at rest."""
    assert http is not None
    began = time.time()
    response = await http.post("/v1/sagas", json={"definition": "bench", "input": {}})
    response.raise_for_status()
    status, ended_at, seen = await watcher.wait(response.json()["id"])
    return Ended(status == SagaStatus.COMPLETED, ended_at - began, seen - began)


async def own_commits(http: httpx.AsyncClient, process: ManagedProcess) -> float:
    """``saga_database_commits_total`` of ``process``."""
    response = await http.get(f"{process.url}/metrics")
    return parse_metrics(response.text).get("saga_database_commits_total", 0.0)


class Dbos(_ChildDriven):
    """The DBOS Transact service; each request runs one workflow to its end."""

    name = "dbos"

    def __init__(
        self,
        workdir: Path,
        system_dsn: str,
        system_database: str,
        participant_url: str,
        in_flight: int = 64,
    ) -> None:
        self.process = services.dbos_service(workdir, system_dsn, participant_url)
        self.state_database: str | None = system_database
        self._in_flight = in_flight
        self._http: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self.process.start()
        await self.process.wait_ready("/healthz")
        self._http = http_client(self.process.url, self._in_flight)

    async def stop(self) -> None:
        await self._close()

    async def run_one(self) -> Ended:
        assert self._http is not None
        began = time.perf_counter()
        response = await self._http.post("/sagas")
        return Ended(response.status_code == 200, time.perf_counter() - began)

    async def own_commits(self) -> float | None:
        return None
