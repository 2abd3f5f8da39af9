"""A private PostgreSQL cluster the campaign may crash: initdb, pg_ctl, ``-m immediate``.

A database crash cannot be staged on a server other people use, so the
campaign makes its own: ``initdb`` in a temporary directory, trust
authentication, loopback only, its own port. PostgreSQL refuses to run as
root; when the campaign runs as root the cluster runs as the ``postgres``
system user (through ``runuser``). :meth:`PgCluster.crash` is ``pg_ctl stop -m
immediate``: the server processes quit without a checkpoint, exactly as if
they had been killed, and the next start replays the WAL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.check.processes import free_port

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


class ClusterError(RuntimeError):
    """The private cluster could not be created or started."""


def find_binary(name: str) -> str:
    """``initdb``/``pg_ctl``: on PATH, else in the newest ``/usr/lib/postgresql/*/bin``."""
    found = shutil.which(name)
    if found:
        return found
    for directory in PG_BIN_DIRS:
        if (directory / name).exists():
            return str(directory / name)
    raise ClusterError(f"{name} not found: install the PostgreSQL server binaries")


@dataclass
class PgCluster:
    """One PostgreSQL cluster in a temporary directory, owned by this campaign."""

    root: Path
    port: int
    user: str | None
    """The system user the server runs as (None: this process's user)."""
    log: Path
    crashes: list[tuple[float, float]] = field(default_factory=list)
    """(down at, up again at), ``time.monotonic()`` seconds."""

    @property
    def data(self) -> Path:
        """The data directory."""
        return self.root / "data"

    def url(self, database: str) -> str:
        """The asyncpg URL of ``database`` on this cluster."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    @classmethod
    def create(cls, max_connections: int = 300) -> PgCluster:
        """``initdb`` a fresh cluster (not started yet)."""
        user = "postgres" if os.geteuid() == 0 else None
        root = Path(tempfile.mkdtemp(prefix="saga-check-pg-"))
        cluster = cls(root, free_port(), user, root / "server.log")
        if user is not None:
            shutil.chown(root, user)
        cluster._run(
            find_binary("initdb"),
            "-D",
            str(cluster.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(cluster.port),
            "unix_socket_directories": f"'{root}'",
            "max_connections": str(max_connections),
            "shared_buffers": "64MB",
        }
        with (cluster.data / "postgresql.conf").open("a") as conf:
            conf.write("".join(f"{k} = {v}\n" for k, v in settings.items()))
        return cluster

    def _run(self, *argv: str, timeout: float = 120) -> str:
        command = list(argv)
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, cwd=self.root, check=False
        )
        if done.returncode != 0:
            raise ClusterError(f"{' '.join(argv[:2])} failed: {done.stderr.strip() or done.stdout}")
        return done.stdout

    def start(self, timeout_s: float = 60) -> None:
        """Start the server and wait until it accepts connections (replays WAL after a crash)."""
        self._run(
            find_binary("pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            str(int(timeout_s)),
            "start",
        )

    def crash(self) -> float:
        """Kill the server without a checkpoint (``-m immediate``); returns when it went down."""
        self._run(find_binary("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        return time.monotonic()

    async def crash_for(self, down_s: float) -> tuple[float, float]:
        """Crash, stay down ``down_s`` seconds, start again; returns (down at, up at)."""
        down = await asyncio.to_thread(self.crash)
        await asyncio.sleep(down_s)
        await asyncio.to_thread(self.start)
        up = time.monotonic()
        self.crashes.append((down, up))
        return down, up

    def destroy(self) -> None:
        """Stop the server (if running) and delete every file of the cluster."""
        with contextlib.suppress(ClusterError, subprocess.TimeoutExpired):  # not running
            self._run(find_binary("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
