"""``saga up`` as a user runs it: one real process, then the ``saga`` client commands.

In a fresh working directory ``saga up --base-port B`` starts the orchestrator on B
and the four example services on B+1..B+4, on SQLite files under ``./.saga``. The
test waits for the orchestrator's ``/readyz`` and the banner, checks the banner
(every URL and a ``saga start order`` command), runs that command exactly as
printed (through a shell, as if pasted), then ``saga show``, ``saga list``, and a
saga short of money that must end ``compensated`` with the payments service's
refusal on show. Finally SIGINT (Ctrl-C): ``saga up`` must exit within 10 s, its
log must end with ``stopped``, and no child process or port may stay behind.
"""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from orchestrator.harness.processes import port_free
from participants.order_saga import EXAMPLE_INPUT, ORDER_DEFINITION
from participants.registry import SERVICES

pytestmark = [pytest.mark.e2e]

SAGA = Path(sys.executable).with_name("saga")
STEPS = [step["name"] for step in ORDER_DEFINITION["steps"]]
SAGA_LINE = re.compile(r"^saga (?P<id>[0-9a-f-]{36})  order v\d+  status: (?P<status>\w+)$", re.M)
HUGE = 1_000_000_000


# -- processes and ports ---------------------------------------------------------------------


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def free_base(span: int = 5) -> int:
    """A base port with base..base+span-1 all free on loopback."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20_000, 60_000)
        if all(port_free(base + i) for i in range(span)):
            return base
    raise RuntimeError("no free range of ports found")


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid``, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z":  # a zombie is dead, whatever its parent does
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class SagaUp:
    proc: subprocess.Popen[bytes]
    base: int
    workdir: Path
    log_path: Path
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.base}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def run(self, *args: str) -> str:
        """``saga <args> --url <orchestrator>``; its output (it must succeed)."""
        return self.shell(shlex.join([str(SAGA), *args, "--url", self.url]))

    def shell(self, command: str) -> str:
        """A command line as a user would paste it, run by bash in the working directory."""
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        return done.stdout


def wait_until_ready(up: SagaUp, timeout_s: float = 60) -> None:
    """``/readyz`` answers 200, then the banner is out (the ``order`` definition registered)."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        if up.proc.poll() is not None:
            raise AssertionError(f"saga up exited with {up.proc.returncode}:\n{up.log()}")
        try:
            response = httpx.get(f"{up.url}/readyz", timeout=1)
            last = response.status_code
            if response.status_code == 200 and "Ctrl-C stops everything" in up.log():
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"saga up not ready after {timeout_s}s ({last}):\n{up.log()}")


@pytest.fixture
def saga_up(tmp_path: Path) -> Iterator[SagaUp]:
    workdir = tmp_path / "work"
    workdir.mkdir()
    log_path = tmp_path / "saga-up.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGA_", "PARTICIPANT_"))}
    env["PATH"] = f"{SAGA.parent}{os.pathsep}{env.get('PATH', '')}"
    base = free_base()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(SAGA), "up", "--base-port", str(base)],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    up = SagaUp(proc, base, workdir, log_path, env)
    try:
        yield up
    finally:
        leftovers = descendants(proc.pid) if proc.poll() is None else set()
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for pid in leftovers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


# -- reading the client's tables -------------------------------------------------------------


def saga_line(output: str) -> tuple[str, str]:
    match = SAGA_LINE.search(output)
    assert match, output
    return match["id"], match["status"]


def table_rows(output: str, header: str) -> list[list[str]]:
    """The rows (whitespace-split) of the table whose header line starts with ``header``."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows: list[list[str]] = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        rows.append(line.split())
    return rows


def step_statuses(output: str) -> dict[str, str]:
    """STEP -> STATUS from the steps table that ``start --wait``, ``show`` print."""
    return {row[0]: row[2] for row in table_rows(output, "STEP ")}


def history(output: str) -> list[list[str]]:
    return table_rows(output, "AT ")


def calls(rows: list[list[str]]) -> list[tuple[str, str, str]]:
    """(step, phase, outcome) of each call in a history table."""
    return [(r[2], r[3], r[5]) for r in rows if r[1] == "call"]


def transitions(rows: list[list[str]]) -> list[str]:
    return [" ".join(r[-3:]) for r in rows if r[1] == "transition"]


# -- the test --------------------------------------------------------------------------------


def test_saga_up_runs_the_order_saga_and_stops_on_ctrl_c(saga_up: SagaUp) -> None:
    started = time.monotonic()
    wait_until_ready(saga_up)
    ready_s = time.monotonic() - started
    base, url = saga_up.base, saga_up.url

    # The banner: every URL, and a ready-to-paste `saga start order` command.
    banner = saga_up.log()
    assert f"orchestrator  {url} " in banner, banner
    service_urls = {}
    for i, name in enumerate(SERVICES, start=1):
        service_urls[name] = f"http://127.0.0.1:{base + i}"
        assert re.search(rf"^  {name} +{re.escape(service_urls[name])}$", banner, re.M), banner
    expected = f"start order --input '{json.dumps(EXAMPLE_INPUT)}' --wait --url {url}"
    [command] = [line.strip() for line in banner.splitlines() if " start order " in line]
    assert command.endswith(" " + expected), command
    assert command.split()[0] in ("saga", str(SAGA)), command
    for name, service_url in service_urls.items():
        assert httpx.get(f"{service_url}/readyz", timeout=5).status_code == 200, name

    # The example saga, pasted from the banner: completed, every step succeeded.
    output = saga_up.shell(command)
    saga_id, status = saga_line(output)
    assert status == "completed", output
    assert step_statuses(output) == dict.fromkeys(STEPS, "succeeded"), output

    # `saga show`: the steps, then the history (each call, and the transition).
    shown = saga_up.run("show", saga_id)
    assert saga_line(shown) == (saga_id, "completed"), shown
    assert step_statuses(shown) == dict.fromkeys(STEPS, "succeeded"), shown
    events = history(shown)
    assert calls(events) == [(step, "action", "succeeded") for step in STEPS], shown
    assert transitions(events) == ["running -> completed"], shown

    # `saga list` lists it.
    listed = saga_up.run("list")
    assert [saga_id, "order", "completed"] in [row[:3] for row in table_rows(listed, "ID ")]

    # The participants saw it: 30 taken from alice, 2 units of A1 held for the order.
    alice = httpx.get(f"{service_urls['payments']}/accounts/alice", timeout=5).json()
    assert alice["balance"] == 1_000 - EXAMPLE_INPUT["amount"], alice
    [order] = httpx.get(
        f"{service_urls['orders']}/orders", params={"saga_id": saga_id}, timeout=5
    ).json()
    assert order["status"] == "approved", order

    # A saga short of money: rejected at the charge, compensated, the refusal on show.
    short = json.dumps({**EXAMPLE_INPUT, "amount": HUGE})
    output = saga_up.run("start", "order", "--input", short, "--wait")
    short_id, status = saga_line(output)
    assert status == "compensated", output
    shown = saga_up.run("show", short_id)
    balance = alice["balance"]
    refusal = f"account 'alice' holds {balance}, {HUGE} needed"
    assert f"error: step charge (action): HTTP 409: {refusal}" in shown, shown
    assert step_statuses(shown) == {
        "create_order": "compensated",
        "reserve_stock": "compensated",
        "charge": "rejected",
        "create_shipment": "pending",
        "commit_stock": "pending",
        "approve_order": "pending",
    }, shown
    events = history(shown)
    assert calls(events) == [
        ("create_order", "action", "succeeded"),
        ("reserve_stock", "action", "succeeded"),
        ("charge", "action", "rejected"),
        ("reserve_stock", "compensation", "succeeded"),
        ("create_order", "compensation", "succeeded"),
    ], shown
    assert transitions(events) == ["running -> compensating", "compensating -> compensated"]
    assert refusal in shown.split("\nAT ", 1)[1], shown  # in the history too
    listed = saga_up.run("list")
    rows = [row[:4] for row in table_rows(listed, "ID ")]
    assert [short_id, "order", "compensated", "charge"] in rows, listed
    assert [saga_id, "order", "completed", "-"] in rows, listed
    assert httpx.get(f"{service_urls['payments']}/accounts/alice").json()["balance"] == balance

    # Everything lives in ./.saga of the working directory.
    files = {p.name for p in (saga_up.workdir / ".saga").iterdir()}
    assert {"orchestrator.db", *(f"{name}.db" for name in SERVICES)} <= files, files

    # Ctrl-C: out within 10 s, "stopped" last, nothing left running or listening.
    children = descendants(saga_up.proc.pid)
    saga_up.proc.send_signal(signal.SIGINT)
    stopping = time.monotonic()
    try:
        returncode = saga_up.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"saga up still running 10 s after SIGINT:\n{saga_up.log()[-5000:]}")
    stop_s = time.monotonic() - stopping
    log = saga_up.log()
    assert returncode == 0, log[-5000:]
    assert log.rstrip().splitlines()[-1] == "stopped", log[-5000:]
    assert not [pid for pid in children if alive(pid)], children
    assert not [p for p in range(base, base + 5) if port_open(p)], "a port is still open"
    assert not re.search(r"\b(ERROR|CRITICAL)\b|Traceback", log), log[-5000:]
    print(
        f"\nsaga up on {base}..{base + 4}: ready in {ready_s:.1f}s, "
        f"example saga {saga_id} completed, short saga {short_id} compensated "
        f"({refusal}), {len(children)} child processes, stopped {stop_s:.2f}s after SIGINT"
    )


def test_saga_up_says_so_when_a_port_is_taken(tmp_path: Path) -> None:
    base = free_base()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGA_", "PARTICIPANT_"))}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base + 2))  # the payments service's port
        taken.listen()
        done = subprocess.run(
            [str(SAGA), "up", "--base-port", str(base)],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert f"port(s) {base + 2} on 127.0.0.1 are in use" in done.stderr, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.returncode == 1, done.returncode
    assert not [p for p in (base, base + 1, base + 3, base + 4) if port_open(p)]
