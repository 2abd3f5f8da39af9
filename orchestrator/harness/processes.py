"""Child processes for the tooling and the tests: start, wait ready, hurt, stop.

Every process runs in its own session (so a Ctrl-C at the terminal reaches
the tool, which then stops them in order) and logs to a file of its own in a
working directory, one file per incarnation, on a fresh loopback port each
time it starts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


async def wait_until(
    predicate: Callable[[], bool], *, interval_s: float = 0.05, timeout_s: float | None = None
) -> bool:
    """Poll ``predicate`` until it holds (True) or ``timeout_s`` passes (False).

    For conditions on counters and processes nothing signals a change of.
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval_s)


def run_blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to its end from synchronous code, and return its result.

    Called where an event loop already runs in this thread (a synchronous
    helper inside an async test fixture), it runs on a loop of its own in
    another thread: the caller blocks, as a synchronous call would.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def port_free(port: int) -> bool:
    """Whether ``port`` on loopback can be bound now."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


async def down_for(
    crash: Callable[[], float], start: Callable[[], None], down_s: float
) -> tuple[float, float]:
    """Crash a server (in a thread), keep it down ``down_s`` seconds, start it again;
    returns (when it went down, when it was up again), by ``time.monotonic()``."""
    down = await asyncio.to_thread(crash)
    await asyncio.sleep(down_s)
    await asyncio.to_thread(start)
    return down, time.monotonic()


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def wait_http_ok(
    url: str,
    *,
    timeout_s: float,
    request_timeout_s: float = 2.0,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Poll ``url`` until it answers 200.

    Raises :class:`RuntimeError` as soon as ``alive`` says the process behind
    it has exited (no point waiting for a dead server), :class:`TimeoutError`
    with the last answer or error after ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    last: object = None
    async with httpx.AsyncClient(timeout=request_timeout_s) as client:
        while time.monotonic() < deadline:
            if alive is not None and not alive():
                raise RuntimeError(f"exited before {url} answered")
            try:
                response = await client.get(url)
                if response.status_code == 200:
                    return
                last = response.status_code
            except httpx.HTTPError as exc:
                last = exc
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{url} did not answer 200 within {timeout_s:.0f}s ({last})")


def saga_command() -> list[str]:
    """How to run the ``saga`` command line with this interpreter."""
    script = Path(sys.executable).with_name("saga")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from orchestrator.cli import main; main()"]


def clean_environment() -> dict[str, str]:
    """This process's environment without any ``SAGA_``/``PARTICIPANT_`` setting.

    A child configured only through what it is given cannot pick up the
    settings of the shell that started the tool.
    """
    return {k: v for k, v in os.environ.items() if not k.startswith(("SAGA_", "PARTICIPANT_"))}


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text format -> ``{"name{labels}": value}`` (unreadable samples skipped)."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                values[name] = float(value)
            except ValueError:
                continue
    return values


@dataclass
class ManagedProcess:
    """One child process, restartable; ``{port}`` in ``argv`` is its port."""

    name: str
    argv: list[str]
    env: dict[str, str]
    workdir: Path
    port: int = 0
    incarnation: int = 0
    paused: bool = False
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """Its base URL on loopback."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        """Started and not exited."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def log_path(self) -> Path:
        """The log of the current incarnation."""
        return self.workdir / f"{self.name}.{self.incarnation}.log"

    def start(self, *, same_port: bool = False) -> None:
        """Start a new incarnation on a fresh port (or, with ``same_port``, on its last one:
        a service its callers know by address comes back where it was)."""
        self.incarnation += 1
        if not (same_port and self.port):
            self.port = free_port()
        self.paused = False
        argv = [a.replace("{port}", str(self.port)) for a in self.argv]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                argv,
                env=self.env,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def wait_ready(
        self, path: str = "/readyz", timeout_s: float = 60.0, request_timeout_s: float = 2.0
    ) -> None:
        """Poll ``path`` until it answers 200; raise with the log's tail if it never does."""
        try:
            await wait_http_ok(
                self.url + path,
                timeout_s=timeout_s,
                request_timeout_s=request_timeout_s,
                alive=lambda: self.alive,
            )
        except RuntimeError:
            raise RuntimeError(f"{self.name} exited at start:\n{self.tail()}") from None
        except TimeoutError as exc:
            raise TimeoutError(f"{self.name} not ready: {exc}:\n{self.tail()}") from None

    def log(self) -> str:
        """The whole log of the current incarnation."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 30) -> str:
        """The last lines of the current log."""
        return "\n".join(self.log().splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, in-flight work is lost. Reaps the process."""
        if self.proc is not None and self.alive:
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: the process freezes with its sockets, leases and in-flight calls."""
        if self.proc is not None and self.alive:
            os.kill(self.proc.pid, signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        """SIGCONT: the process carries on as if no time had passed."""
        if self.proc is not None and self.alive:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    async def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM (after SIGCONT if paused), then SIGKILL if it outlives ``grace_s``."""
        if self.proc is None:
            return
        if self.alive:
            if self.paused:
                self.resume()
            self.proc.send_signal(signal.SIGTERM)
            await wait_until(lambda: not self.alive, timeout_s=grace_s)
        if self.alive:
            self.proc.kill()
        self.proc.wait(timeout=10)

    async def scrape(self, client: httpx.AsyncClient) -> dict[str, float] | None:
        """Its ``/metrics``, or None when it cannot answer now."""
        if not self.alive or self.paused:
            return None
        try:
            response = await client.get(f"{self.url}/metrics", timeout=2.0)
        except httpx.HTTPError:
            return None
        return parse_metrics(response.text) if response.status_code == 200 else None
