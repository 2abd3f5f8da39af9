"""``saga bench`` from start to report: processes, loads, figures, targets, JSON."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from orchestrator.bench import pg, services
from orchestrator.bench.broker import DEFAULT_BROKER, BenchQueue, queue_name
from orchestrator.bench.measure import measure, medians
from orchestrator.bench.memory import measure_memory
from orchestrator.bench.modes import MODES, Dbos, Mode, Orchestrator, OverBroker, Plain
from orchestrator.bench.scaling import measure_workers
from orchestrator.bench.targets import evaluate, ratios
from orchestrator.harness.processes import ManagedProcess

DBOS_MISSING = (
    "dbos skipped: DBOS Transact is not installed (pip install 'saga-orchestrator[bench]')"
)


@dataclass
class BenchConfig:
    """What ``saga bench`` runs; see ``saga bench --help``."""

    sagas: int = 2000
    in_flight: tuple[int, ...] = (1, 50)
    runs: int = 3
    modes: tuple[str, ...] = MODES
    scaling: tuple[int, ...] = ()
    memory: tuple[int, int] | None = None
    database_url: str | None = None
    broker_url: str = DEFAULT_BROKER
    workdir: Path | None = None
    json_path: Path | None = None
    poll_s: float = 0.005
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def problems(self) -> list[str]:
        """What makes this configuration unusable."""
        found = []
        if self.sagas < 1 or self.runs < 1 or not self.in_flight or min(self.in_flight) < 1:
            found.append("--sagas, --runs and every --in-flight must be at least 1")
        if unknown := [m for m in self.modes if m not in MODES]:
            found.append(f"unknown mode(s): {', '.join(unknown)}")
        if self.scaling and min(self.scaling) < 1:
            found.append("--scaling counts must be at least 1")
        if self.memory is not None and not 0 < self.memory[0] < self.memory[1]:
            found.append("--memory-sagas needs two increasing counts")
        if not self.broker_url.startswith(("amqp://", "amqps://")):
            found.append("--broker must be an amqp:// or amqps:// URL")
        return found


async def run_bench(config: BenchConfig, log: IO[str]) -> dict[str, Any]:
    """Run everything ``config`` asks for and return the report (also written as JSON)."""
    workdir = config.workdir or Path(".saga") / "bench" / config.run_id
    workdir.mkdir(parents=True, exist_ok=True)
    dbs, given = pg.databases_for(config.run_id, config.database_url)
    modes = list(config.modes)
    skipped: dict[str, str] = {}

    def skip(mode: str, message: str) -> None:
        modes.remove(mode)
        skipped[mode] = message
        print(message, file=log, flush=True)

    if "dbos" in modes and not services.dbos_installed():
        skip("dbos", DBOS_MISSING)
    queue: BenchQueue | None = None
    if "broker" in modes:
        queue = BenchQueue(config.broker_url, queue_name(config.run_id))
        if (reason := await queue.declare()) is not None:
            skip("broker", f"broker skipped: {reason}")
            queue = None
    started = time.time()
    try:
        await dbs.create(orchestrator_given=given)
        participant = services.participant(
            workdir,
            dbs.dsn(dbs.participant),
            queue.url if queue else None,
            queue.name if queue else None,
        )
        try:
            participant.start()
            await participant.wait_ready("/healthz")
            if queue is not None and (reason := await _consumed(queue)) is not None:
                skip("broker", f"broker skipped: {reason}")
            raw = await _compare(config, modes, dbs, workdir, participant, queue, log)
            scaling = []
            for workers in config.scaling:
                print(f"scaling: {workers} worker(s)", file=log, flush=True)
                scaling.append(
                    await measure_workers(
                        workers,
                        workdir=workdir,
                        database_dsn=dbs.dsn(dbs.orchestrator),
                        participant_url=participant.url,
                        sagas=config.sagas,
                        in_flight=max(config.in_flight),
                        runs=config.runs,
                        poll_s=config.poll_s,
                    )
                )
            memory = None
            if config.memory is not None:
                print(f"memory: {config.memory[1]} sagas", file=log, flush=True)
                memory = await measure_memory(
                    workdir=workdir,
                    database_dsn=dbs.dsn(dbs.orchestrator),
                    database_name=dbs.orchestrator,
                    participant_url=participant.url,
                    checkpoints=config.memory,
                    in_flight=max(config.in_flight),
                    poll_s=config.poll_s,
                )
        finally:
            await participant.stop()
            await dbs.drop()
    finally:
        # Every process that used the queue has stopped: nothing redeclares it.
        if queue is not None:
            try:
                await queue.delete()
            except Exception as exc:  # the figures stand; only the clean-up failed
                print(f"the queue {queue.name!r} was not deleted: {exc!r}", file=log, flush=True)
    results = [
        medians([r for r in raw if r["mode"] == mode and r["in_flight"] == count])
        for count in config.in_flight
        for mode in modes
    ]
    path = config.json_path or workdir / "bench.json"
    report: dict[str, Any] = {
        "run": {
            "id": config.run_id,
            "started_at": started,
            "duration_s": round(time.time() - started, 1),
            "sagas": config.sagas,
            "in_flight": list(config.in_flight),
            "runs": config.runs,
            "modes": modes,
            "steps_per_saga": services.STEPS,
            "poll_ms": config.poll_s * 1000,
            "broker": (
                {"url": queue.shown(), "queue": queue.name} if "broker" in modes and queue else None
            ),
            "workdir": str(workdir),
            "json": str(path),
        },
        "skipped": skipped,
        "results": results,
        "ratios": ratios(results),
        "scaling": scaling,
        "memory": memory,
        "targets": evaluate(results, services.STEPS, scaling, memory),
        "measurements": raw,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return report


async def _consumed(queue: BenchQueue) -> str | None:
    """None once the participant consumes ``queue``, else why the broker mode cannot run."""
    try:
        if await queue.wait_consumed():
            return None
    except Exception as exc:  # whatever the broker did, the other modes still run
        return f"the broker at {queue.shown()} stopped answering ({type(exc).__name__})"
    return f"the participant did not consume {queue.name!r} within 30 s (see its log)"


async def _compare(
    config: BenchConfig,
    modes: list[str],
    dbs: pg.Databases,
    workdir: Path,
    participant: ManagedProcess,
    queue: BenchQueue | None,
    log: IO[str],
) -> list[dict[str, Any]]:
    """Every mode at every in-flight count, ``runs`` times, interleaved so that drift in
    the machine's load spreads over all modes alike."""
    lanes = max(config.in_flight)
    participant_url = participant.url
    built: dict[str, Mode] = {}
    for name in modes:
        if name == "plain":
            built[name] = Plain(participant_url)
        elif name == "orchestrator":
            dsn = dbs.dsn(dbs.orchestrator)
            built[name] = Orchestrator(
                workdir, dsn, dbs.orchestrator, participant_url, config.poll_s, lanes
            )
        elif name == "broker":
            assert queue is not None
            built[name] = OverBroker(
                workdir, dbs.dsn(dbs.broker), dbs.broker, queue.address, config.poll_s, lanes
            )
        else:
            built[name] = Dbos(workdir, dbs.dsn(dbs.dbos), dbs.dbos, participant_url, lanes)
    raw: list[dict[str, Any]] = []
    try:
        for mode in built.values():
            await mode.start()
        for run in range(config.runs):
            for count in config.in_flight:
                for mode in built.values():
                    print(
                        f"run {run + 1}/{config.runs}: {mode.name} at {count} in flight",
                        file=log,
                        flush=True,
                    )
                    figures = await measure(
                        mode,
                        dbs,
                        sagas=config.sagas,
                        in_flight=count,
                        participant_pid=participant.proc.pid if participant.proc else None,
                    )
                    raw.append({**figures, "run": run + 1})
    finally:
        for mode in built.values():
            await mode.stop()
    return raw
