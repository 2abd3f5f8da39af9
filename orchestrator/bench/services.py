"""The benchmark's processes: the participant, ``saga serve`` (in its roles) and DBOS.

Each is a :class:`~orchestrator.harness.processes.ManagedProcess` logging to a
file in the run's directory, on a free loopback port.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx

from orchestrator.harness.processes import ManagedProcess, clean_environment, saga_command

#: The benchmark saga: three compensatable steps, one participant call each.
DEFINITION = {
    "name": "bench",
    "steps": [
        {
            "name": f"s{n}",
            "participant": "bench",
            "kind": "compensatable",
            "action": {"path": f"/step/{n}"},
            "compensation": {"path": f"/step/{n}"},
        }
        for n in (1, 2, 3)
    ],
}
STEPS = len(DEFINITION["steps"])


def participant(
    workdir: Path, dsn: str, broker_url: str | None = None, queue: str | None = None
) -> ManagedProcess:
    """The benchmark participant on database ``dsn``; with ``broker_url`` and ``queue``,
    also consuming its commands from that queue."""
    argv = [sys.executable, "-m", "orchestrator.bench.participant", dsn, "{port}"]
    env = clean_environment()
    if broker_url and queue:
        env |= {"BENCH_BROKER_URL": broker_url, "BENCH_QUEUE": queue}
    return ManagedProcess("participant", argv, env, workdir)


def saga_serve(
    name: str, workdir: Path, database_dsn: str, participant_url: str, role: str = "all"
) -> ManagedProcess:
    """``saga serve --role ROLE`` on ``database_dsn``, calling the participant."""
    settings = {
        "DATABASE_URL": database_dsn,
        "PARTICIPANTS": json.dumps({"bench": participant_url}),
        "LOG_LEVEL": "WARNING",
    }
    env = {**clean_environment(), **{f"SAGA_{k}": v for k, v in settings.items()}}
    argv = [*saga_command(), "serve", "--role", role, "--port", "{port}"]
    return ManagedProcess(name, argv, env, workdir)


def dbos_service(workdir: Path, system_dsn: str, participant_url: str) -> ManagedProcess:
    """The DBOS Transact service (needs the ``bench`` extra) on system database ``system_dsn``."""
    argv = [
        sys.executable,
        "-m",
        "orchestrator.bench.dbos_service",
        system_dsn,
        participant_url,
        "{port}",
    ]
    return ManagedProcess("dbos", argv, clean_environment(), workdir)


async def register_definition(api_url: str) -> None:
    """Register the benchmark saga's definition (idempotent)."""
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        response = await client.post("/v1/definitions", json=DEFINITION)
        response.raise_for_status()


def dbos_installed() -> bool:
    """Whether DBOS Transact can be imported (the ``bench`` extra)."""
    import importlib.util

    return importlib.util.find_spec("dbos") is not None
