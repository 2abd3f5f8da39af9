"""The live line: what it shows, and that it counts violations as the run goes (no I/O)."""

from __future__ import annotations

import asyncio
import io
from types import SimpleNamespace
from typing import cast

from orchestrator.check.chaos import Chaos, ChaosLog
from orchestrator.check.load import Tally
from orchestrator.check.progress import Progress


async def test_the_line_shows_sagas_faults_chaos_and_violations_so_far() -> None:
    tally = Tally(total=100, started=40)
    tally.resting["completed"] = 30
    log = ChaosLog(kills=[{"worker": "worker1"}])
    chaos = cast(Chaos, SimpleNamespace(log=log, current="zombie"))
    checks: list[int] = []

    async def faults() -> int:
        return 17

    async def violations() -> int:
        checks.append(1)
        return 2

    stream = io.StringIO()
    progress = Progress(
        stream,
        tally,
        chaos,
        faults,
        kills=3,
        zombies=1,
        db_crashes=0,
        violations=violations,
        violations_every_s=0.2,
    )
    running = asyncio.create_task(progress.run())
    await asyncio.sleep(1.2)
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    line = progress.line()
    for part in ("started 40/100", "running 10", "completed 30", "faults 17", "kills 1/3"):
        assert part in line, line
    assert "zombie 0/1" in line
    assert "db crash" not in line  # none planned, none shown
    assert "violations 2" in line
    assert "[zombie]" in line
    assert checks, "the history was never checked during the run"
    assert "violations 2" in stream.getvalue()  # drawn, not only computed
