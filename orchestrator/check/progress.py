"""The live display: one line, redrawn in place on a terminal, printed now and then otherwise.

``load · started 412/1000 · running 48 · completed 301 · compensated 55 · failed 8 ·
faults 1203 · kills 2/5 · zombie 0/1 · db crash 0/1 · violations 0 · [kill] · 41s``

Fault counts come from the rules themselves (``GET /v1/faults`` and each
service's ``GET /_faults``), read every couple of seconds. "violations" are
the anomalies the recorded history already shows for certain (a status going
back, a version going back or forking, one start key naming two sagas),
checked every 15 s; the full verification runs at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TextIO

from orchestrator.check.chaos import Chaos
from orchestrator.check.load import Tally


class Progress:
    """Draws the campaign's progress on ``stream`` until cancelled."""

    def __init__(
        self,
        stream: TextIO,
        tally: Tally,
        chaos: Chaos,
        count_faults: Callable[[], Awaitable[int]],
        *,
        kills: int,
        zombies: int,
        db_crashes: int,
        partitions: int = 0,
        broker_crashes: int = 0,
        consumer_kills: int = 0,
        violations: Callable[[], Awaitable[int]] | None = None,
        violations_every_s: float = 15.0,
    ) -> None:
        self.stream = stream
        self.tally = tally
        self.chaos = chaos
        self.count_faults = count_faults
        self.count_violations = violations
        self.violations = 0
        self.violations_every_s = violations_every_s
        self.planned = {
            "kills": kills,
            "zombie": zombies,
            "db crash": db_crashes,
            "partition": partitions,
            "broker crash": broker_crashes,
            "consumer kill": consumer_kills,
        }
        self.phase = "load"
        self.faults = 0
        self.started_at = time.monotonic()
        self.tty = stream.isatty()

    def line(self) -> str:
        """The current progress line."""
        t, log = self.tally, self.chaos.log
        done = {
            "kills": len(log.kills),
            "zombie": len(log.zombies),
            "db crash": len(log.db_crashes),
            "partition": len(log.partitions),
            "broker crash": len(log.broker_crashes),
            "consumer kill": len(log.consumer_kills),
        }
        parts = [
            f"{self.phase}",
            f"started {t.started}/{t.total}",
            f"running {t.running}",
            f"completed {t.resting['completed']}",
            f"compensated {t.resting['compensated']}",
            f"failed {t.resting['failed']}",
            f"faults {self.faults}",
            *(f"{name} {done[name]}/{n}" for name, n in self.planned.items() if n),
        ]
        if self.count_violations is not None:
            parts.append(f"violations {self.violations}")
        if self.chaos.current:
            parts.append(f"[{self.chaos.current}]")
        parts.append(f"{time.monotonic() - self.started_at:.0f}s")
        return " · ".join(parts)

    async def run(self) -> None:
        """Redraw every half second (every 10 s when not a terminal)."""
        interval = 0.5 if self.tty else 10.0
        last_count = 0.0
        last_print = 0.0
        last_check = time.monotonic()
        try:
            while True:
                now = time.monotonic()
                if now - last_count >= 2.0:
                    last_count = now
                    # A display must never stop the campaign.
                    with contextlib.suppress(Exception):
                        self.faults = await asyncio.wait_for(self.count_faults(), 2.0)
                if (
                    self.count_violations is not None
                    and now - last_check >= self.violations_every_s
                ):
                    last_check = now
                    with contextlib.suppress(Exception):
                        self.violations = await self.count_violations()
                if now - last_print >= interval:
                    last_print = now
                    self._draw()
                await asyncio.sleep(0.5)
        finally:
            self._draw()
            if self.tty:
                self.stream.write("\n")
                self.stream.flush()

    def _draw(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K" + self.line())
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()
