"""The end-to-end harness: ``saga serve`` processes and API helpers shared by the tests."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from orchestrator.harness.processes import (
    ManagedProcess,
    clean_environment,
    parse_metrics,
    saga_command,
)

FINAL = {"completed", "compensated", "failed"}


# -- the orchestrator as a real process ----------------------------------------------------


@dataclass
class SagaProcess:
    """One ``saga serve`` process: the harness's process, seen the way the tests use it."""

    process: ManagedProcess

    @property
    def name(self) -> str:
        return self.process.name

    @property
    def port(self) -> int:
        return self.process.port

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def env(self) -> dict[str, str]:
        return self.process.env

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        """The running (or exited) child."""
        assert self.process.proc is not None
        return self.process.proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.process.alive

    def log(self) -> str:
        return self.process.log()

    def problems(self) -> list[str]:
        """Log lines reporting an error or a traceback (a healthy run has none)."""
        return [
            line
            for line in self.log().splitlines()
            if re.search(r"\b(ERROR|CRITICAL)\b|Traceback", line)
        ]

    def sigkill(self) -> None:
        """Kill the process at once (a crash: no shutdown code runs) and reap it."""
        self.process.kill()

    async def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM, wait (keeping the event loop running), SIGKILL if it lingers."""
        await self.process.stop(grace_s=timeout_s)

    async def metrics(self) -> dict[str, float]:
        """The process's ``/metrics``: sample name (with labels) -> value."""
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as client:
            response = await client.get("/metrics")
        response.raise_for_status()
        return parse_metrics(response.text)


class SagaServers:
    """Starts ``saga serve`` processes for one test; stops them all at teardown."""

    def __init__(self, workdir: Path, database_url: str, participants: dict[str, list[str]]):
        self.workdir = workdir
        self.database_url = database_url
        self.participants = participants
        self.started: list[SagaProcess] = []

    def environment(self, **settings: Any) -> dict[str, str]:
        """The environment of a process: ``SAGA_<NAME>`` for each setting, fast timings."""
        values: dict[str, Any] = {
            "database_url": self.database_url,
            "participants": json.dumps(self.participants),
            "enable_faults": "1",
            "poll_interval_s": 0.05,
            "lease_s": 3.0,
            "fault_refresh_s": 0.05,
            "log_level": "INFO",
            **settings,
        }
        return {**clean_environment(), **{f"SAGA_{k.upper()}": str(v) for k, v in values.items()}}

    async def start(
        self, *, role: str = "all", ready_timeout_s: float = 30.0, **settings: Any
    ) -> SagaProcess:
        """Start ``saga serve`` with ``SAGA_<NAME>`` = each setting; return once it is ready."""
        name = f"saga{len(self.started) + 1}"
        argv = [*saga_command(), "serve", "--port", "{port}", "--role", role]
        process = ManagedProcess(name, argv, self.environment(**settings), self.workdir)
        process.start()
        started = SagaProcess(process)
        self.started.append(started)
        # The participant lives on this event loop: wait without blocking it.
        await process.wait_ready(timeout_s=ready_timeout_s, request_timeout_s=1.0)
        return started

    async def stop_all(self) -> None:
        for process in self.started:
            await process.stop()

    def dump_logs(self) -> None:
        for process in self.started:
            print(f"\n----- {process.name} (pid {process.pid}, port {process.port}) log -----")
            print(process.log()[-20_000:])


# -- API helpers -----------------------------------------------------------


async def register(client: httpx.AsyncClient, name: str, steps: list[dict[str, Any]]) -> None:
    response = await client.post("/v1/definitions", json={"name": name, "steps": steps})
    assert response.status_code in (200, 201), response.text


async def start_saga(client: httpx.AsyncClient, definition: str, saga_input: dict[str, Any]) -> str:
    response = await client.post("/v1/sagas", json={"definition": definition, "input": saga_input})
    assert response.status_code == 201, response.text
    saga_id: str = response.json()["id"]
    return saga_id


async def statuses(client: httpx.AsyncClient, ids: list[str]) -> dict[str, str]:
    """Each saga's status, read one by one (concurrently)."""
    sem = asyncio.Semaphore(20)

    async def one(saga_id: str) -> str:
        async with sem:
            response = await client.get(f"/v1/sagas/{saga_id}")
        response.raise_for_status()
        status: str = response.json()["status"]
        return status

    found = await asyncio.gather(*(one(i) for i in ids))
    return dict(zip(ids, found, strict=True))


async def wait_all_final(
    client: httpx.AsyncClient, ids: list[str], timeout_s: float
) -> dict[str, str]:
    """Wait until every saga is final; return id -> status (raise with the stragglers)."""
    deadline = time.monotonic() + timeout_s
    pending = list(ids)
    done: dict[str, str] = {}
    while True:
        now_statuses = await statuses(client, pending)
        done.update({i: s for i, s in now_statuses.items() if s in FINAL})
        pending = [i for i in pending if i not in done]
        if not pending:
            return done
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{len(pending)} of {len(ids)} sagas not final after {timeout_s}s: "
                f"{ {i: now_statuses[i] for i in pending[:5]} }"
            )
        await asyncio.sleep(0.1)


async def history(client: httpx.AsyncClient, saga_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/sagas/{saga_id}/events")
    response.raise_for_status()
    items: list[dict[str, Any]] = response.json()["items"]
    return items
