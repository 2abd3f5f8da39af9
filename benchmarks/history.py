"""Scale of history: claims beside N finished sagas against an empty database, and prunes.

Two throwaway PostgreSQL databases migrated to head, "empty" and "history":

1. ``--finished`` completed or compensated sagas are bulk-loaded into
   "history" with SQL (``INSERT ... SELECT generate_series``): a real machine
   state as JSON, an input, a start key and 6 history rows each, finished over
   the last 60 days. The load time is printed.
2. Both get ``--due`` running sagas, due now, and ``VACUUM ANALYZE``. One
   claimer takes them ``--batch`` at a time with ``SagaWriter.claim`` and
   writes a transition for each with ``SagaWriter.record`` (which makes it due
   again, so the queue never runs dry). The databases are measured in
   alternating rounds, so that what else runs on the machine weighs on both:
   claim latency (p50/p99), claimed+recorded sagas per second, their ratios,
   and ``EXPLAIN (ANALYZE, BUFFERS)`` of the claim statement the writer sends
   and of a prune batch's pick.
3. ``saga prune --older-than 45d`` runs alone (sagas deleted per second), then
   ``saga prune --older-than 30d`` runs while the claimer goes on: claim
   latency during the prune is compared with the latency just before it.

    .venv/bin/python benchmarks/history.py --finished 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import re
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator import json_codec  # noqa: E402
from orchestrator.clock import utcnow  # noqa: E402
from orchestrator.machine import (  # noqa: E402
    Plan,
    SagaStatus,
    StepPlan,
    StepState,
    StepStatus,
    start,
    state_to_json,
)
from orchestrator.store import migrate, retention  # noqa: E402
from orchestrator.store.engine import create_engine  # noqa: E402
from orchestrator.store.rows import HistoryEvent, StoredSaga  # noqa: E402
from orchestrator.store.sagas import SagaWriter  # noqa: E402
from tests.support.databases import throwaway_database  # noqa: E402

PLAN = Plan.sequential((StepPlan("reserve"), StepPlan("charge"), StepPlan("ship")))
INPUT = {"account": "alice", "sku": "A1", "qty": 2, "amount": 30}
LEASE_S = 30.0
WARMUP_CLAIMS = 20


@dataclass
class Samples:
    """Claim latencies (ms) and sagas claimed and recorded in ``elapsed`` seconds."""

    latencies: list[float] = dataclasses.field(default_factory=list)
    recorded: int = 0
    elapsed: float = 0.0
    #: Per claim: when it started (``time.monotonic``) and how many sagas it took.
    claims: list[tuple[float, int]] = dataclasses.field(default_factory=list)

    def within(self, start: float, end: float) -> Samples:
        """The claims that started between ``start`` and ``end``."""
        inside = [i for i, (at, _) in enumerate(self.claims) if start <= at <= end]
        return Samples(
            latencies=[self.latencies[i] for i in inside],
            recorded=sum(self.claims[i][1] for i in inside),
            elapsed=end - start,
            claims=[self.claims[i] for i in inside],
        )

    def add(self, other: Samples) -> None:
        self.latencies += other.latencies
        self.recorded += other.recorded
        self.elapsed += other.elapsed

    def p(self, centile: int) -> float:
        return statistics.quantiles(self.latencies, n=100)[centile - 1]

    @property
    def sagas_per_s(self) -> float:
        return self.recorded / self.elapsed

    def line(self, label: str) -> str:
        return (
            f"{label:<22} claim p50 {self.p(50):7.2f} ms  p99 {self.p(99):7.2f} ms  "
            f"claim+record {self.sagas_per_s:6.0f} sagas/s  ({len(self.latencies)} claims)"
        )

    def versus(self, base: Samples, label: str) -> str:
        return (
            f"  ratio {label}: claim p50 {ratio(self.p(50), base.p(50))}, "
            f"p99 {ratio(self.p(99), base.p(99))}, "
            f"throughput {ratio(self.sagas_per_s, base.sagas_per_s)}"
        )


def ratio(value: float, base: float) -> str:
    return f"{value / base:5.2f}x ({(value / base - 1) * 100:+.0f}%)"


def running_state_json() -> str:
    return json_codec.dumps_str(state_to_json(start(PLAN, utcnow())))


def finished_state_json() -> str:
    """The state of a saga that completed its three steps, as the machine writes it."""
    now = utcnow()
    state = start(PLAN, now)
    steps = tuple(
        StepState(
            status=StepStatus.SUCCEEDED,
            attempts=2 if name == "charge" else 1,
            started_at=now,
            finished_at=now + timedelta(milliseconds=40),
            result={"id": f"{name}-0001", "amount": 30, "currency": "EUR", "ok": True},
        )
        for name in ("reserve", "charge", "ship")
    )
    finished = dataclasses.replace(state, status=SagaStatus.COMPLETED, steps=steps, stage=2)
    return json_codec.dumps_str(state_to_json(finished))


# Ids are derived from the row number so that events and keys can be joined
# to their saga without reading it back.
_LOAD_SAGAS = sa.text(
    """
INSERT INTO sagas (id, definition_name, definition_version, status, input, state, version,
                   wake_at, lease_owner, lease_expires_at, created_at, updated_at, trace_id)
SELECT md5('h' || i)::uuid, 'order', 1,
       CASE WHEN i % 10 = 0 THEN 'compensated' ELSE 'completed' END,
       jsonb_set(CAST(:input AS jsonb), '{qty}', to_jsonb(i % 7 + 1)),
       jsonb_set(CAST(:state AS jsonb), '{steps,0,result,id}', to_jsonb('reserve-' || i)),
       9, NULL, NULL, NULL,
       CAST(:now AS timestamptz) - (i % 60) * interval '1 day' - (i % 86400) * interval '1 second'
            - interval '2 seconds',
       CAST(:now AS timestamptz) - (i % 60) * interval '1 day' - (i % 86400) * interval '1 second',
       md5('t' || i)
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS i
"""
)

_LOAD_KEYS = sa.text(
    """
INSERT INTO saga_start_keys (key, request_hash, saga_id, created_at)
SELECT 'key-' || i, md5('r' || i), md5('h' || i)::uuid,
       CAST(:now AS timestamptz) - (i % 60) * interval '1 day' - (i % 86400) * interval '1 second'
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS i
"""
)

_LOAD_EVENTS = sa.text(
    """
INSERT INTO saga_events (saga_id, at, kind, step, phase, attempt, outcome, detail)
SELECT md5('h' || i)::uuid,
       CAST(:now AS timestamptz) - (i % 60) * interval '1 day' - (i % 86400) * interval '1 second'
            - (6 - e.n) * interval '300 milliseconds',
       e.kind, e.step, e.phase, e.attempt, e.outcome,
       CASE WHEN e.kind = 'call'
            THEN jsonb_build_object('duration_ms', 10 + i % 50, 'status', e.status,
                                    'url', 'http://' || e.step || '.internal/' || e.step)
            ELSE e.detail END
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS i
CROSS JOIN (VALUES
    (1, 'started', NULL, NULL, NULL, NULL, NULL, '{"status": "running"}'::jsonb),
    (2, 'call', 'reserve', 'action', 1, 'succeeded', 200, NULL),
    (3, 'call', 'charge', 'action', 1, 'transient', 503, NULL),
    (4, 'call', 'charge', 'action', 2, 'succeeded', 200, NULL),
    (5, 'call', 'ship', 'action', 1, 'succeeded', 200, NULL),
    (6, 'transition', NULL, NULL, NULL, NULL, NULL,
        '{"from": "running", "to": "completed"}'::jsonb)
) AS e(n, kind, step, phase, attempt, outcome, status, detail)
ORDER BY i, e.n
"""
)

_LOAD_DUE = sa.text(
    """
INSERT INTO sagas (id, definition_name, definition_version, status, input, state, version,
                   wake_at, lease_owner, lease_expires_at, created_at, updated_at, trace_id)
SELECT gen_random_uuid(), 'order', 1, 'running', CAST(:input AS jsonb), CAST(:state AS jsonb),
       1, CAST(:now AS timestamptz) - i * interval '1 millisecond', NULL, NULL,
       CAST(:now AS timestamptz), CAST(:now AS timestamptz), NULL
FROM generate_series(1, CAST(:count AS int)) AS i
"""
)


async def load_finished(engine: AsyncEngine, count: int, chunk: int) -> float:
    """Bulk-load ``count`` finished sagas with their keys and events; returns seconds."""
    params: dict[str, Any] = {
        "input": json_codec.dumps_str(INPUT),
        "state": finished_state_json(),
        "now": utcnow(),
    }
    started = time.perf_counter()
    for first in range(1, count + 1, chunk):
        last = min(count, first + chunk - 1)
        bounds = {**params, "first": first, "last": last}
        async with engine.begin() as conn:
            await conn.execute(_LOAD_SAGAS, bounds)
            await conn.execute(_LOAD_KEYS, bounds)
            await conn.execute(_LOAD_EVENTS, bounds)
        elapsed = time.perf_counter() - started
        print(f"  loaded {last:>9} finished sagas  {elapsed:6.1f} s", flush=True)
    return time.perf_counter() - started


async def load_due(engine: AsyncEngine, count: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            _LOAD_DUE,
            {
                "input": json_codec.dumps_str(INPUT),
                "state": running_state_json(),
                "now": utcnow(),
                "count": count,
            },
        )


async def vacuum_analyze(engine: AsyncEngine) -> None:
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    async with autocommit.connect() as conn:
        for table in ("sagas", "saga_events", "saga_start_keys"):
            await conn.execute(sa.text(f"VACUUM (ANALYZE) {table}"))


async def _record(writer: SagaWriter, saga: StoredSaga) -> None:
    now = utcnow()
    written = await writer.record(
        saga,
        saga.state,
        now,
        wake_at=now,
        lease=None,
        history=[HistoryEvent("transition", now, detail={"from": "running", "to": "running"})],
    )
    if written is None:
        raise RuntimeError(f"saga {saga.id}: the transition lost a version race")


async def claim_loop(
    writer: SagaWriter, batch: int, claims: int | None, stop: asyncio.Event | None = None
) -> Samples:
    """Claim ``batch`` sagas and record a transition for each, ``claims`` times or to ``stop``."""
    samples = Samples()
    measured_from = time.perf_counter()
    i = 0
    while (claims is None or i < WARMUP_CLAIMS + claims) and not (stop and stop.is_set()):
        if i == WARMUP_CLAIMS:
            measured_from, samples.recorded = time.perf_counter(), 0
        began = time.perf_counter()
        got = await writer.claim("bench", utcnow(), LEASE_S, batch)
        took = time.perf_counter() - began
        if not got:
            raise RuntimeError("nothing was due: raise --due")
        if i >= WARMUP_CLAIMS:
            samples.latencies.append(took * 1000)
            samples.claims.append((time.monotonic() - took, len(got)))
        await asyncio.gather(*(_record(writer, saga) for saga, _ in got))
        samples.recorded += len(got)
        i += 1
    samples.elapsed = time.perf_counter() - measured_from
    if len(samples.latencies) < 2:
        raise RuntimeError("too few claims were measured")
    return samples


@contextmanager
def captured(engine: AsyncEngine, marker: str) -> Iterator[list[tuple[str, Any]]]:
    """The statements with ``marker`` that ``engine`` sends (SQL and parameters for the driver)."""
    seen: list[tuple[str, Any]] = []

    def before(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, _many: bool
    ) -> None:
        if marker in statement:
            seen.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", before)


async def explain(engine: AsyncEngine, seen: list[tuple[str, Any]]) -> str:
    """``EXPLAIN (ANALYZE, BUFFERS)`` of the last statement seen, in a transaction rolled back."""
    if not seen:
        raise RuntimeError("the statement to explain was not seen")
    statement, parameters = seen[-1]
    async with engine.connect() as conn:
        trans = await conn.begin()
        rows = await conn.exec_driver_sql(
            "EXPLAIN (ANALYZE, BUFFERS) " + statement, tuple(parameters)
        )
        plan = "\n".join(row[0] for row in rows)
        await trans.rollback()
    return f"{statement.strip()}\n\n{plan}"


async def explain_claim(engine: AsyncEngine, writer: SagaWriter, batch: int) -> str:
    """The claim statement the writer sends, explained."""
    with captured(engine, "SKIP LOCKED") as seen:
        claimed = await writer.claim("explain", utcnow(), LEASE_S, batch)
    for saga, _ in claimed:  # give them back
        await _record(writer, saga)
    return await explain(engine, seen)


async def explain_prune(engine: AsyncEngine, older_than: timedelta, batch_size: int) -> str:
    """One real prune batch, then its pick of the next batch explained."""
    with captured(engine, "updated_at <") as seen:
        await retention.prune_batch(engine, utcnow() - older_than, batch_size=batch_size)
    return await explain(engine, seen)


async def sizes(engine: AsyncEngine) -> str:
    query = sa.text(
        "SELECT relname, pg_size_pretty(pg_total_relation_size(oid)) FROM pg_class "
        "WHERE relname IN ('sagas', 'saga_events', 'saga_start_keys', 'ix_sagas_due', "
        "'ix_sagas_resting') ORDER BY relname"
    )
    async with engine.connect() as conn:
        return ", ".join(f"{name} {size}" for name, size in await conn.execute(query))


async def count_sagas(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(sa.text("SELECT count(*) FROM sagas"))).scalar_one())


async def run_prune(url: str, older_than: str, batch_size: int) -> tuple[int, int, float]:
    """``saga prune`` as a separate process; returns (sagas, events, seconds it says it took)."""
    saga = str(Path(sys.executable).with_name("saga"))
    args = ["prune", "--older-than", older_than, "--batch-size", str(batch_size)]
    began = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        saga, *args, "--database-url", url, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    wall = time.perf_counter() - began
    text = out.decode().strip()
    found = re.match(r"deleted (\d+) sagas and (\d+) events .*, ([\d.]+) s\)", text)
    if process.returncode != 0 or found is None:
        raise RuntimeError(f"saga prune failed: {text}")
    print(f"  $ saga {' '.join(args)}\n  {text}   [process wall {wall:.1f} s]")
    return int(found.group(1)), int(found.group(2)), float(found.group(3))


async def compare(
    writers: dict[str, SagaWriter], batch: int, claims: int, rounds: int
) -> dict[str, Samples]:
    """Measure each database in turn, ``rounds`` times: noise from the machine hits all alike."""
    totals = {name: Samples() for name in writers}
    names = list(writers)
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            totals[name].add(await claim_loop(writers[name], batch, max(2, claims // rounds)))
    return totals


async def bench(empty_url: str, url: str, args: argparse.Namespace) -> None:
    # Small pools: the PostgreSQL server may be shared (max_connections).
    empty_engine, engine = create_engine(empty_url, pool_size=4), create_engine(url, pool_size=4)
    writer = SagaWriter(engine)
    try:
        print(f"== loading {args.finished} finished sagas (6 events and a start key each)")
        load_s = await load_finished(engine, args.finished, args.chunk)
        for each in (empty_engine, engine):
            await load_due(each, args.due)
        began = time.perf_counter()
        await vacuum_analyze(engine)
        await vacuum_analyze(empty_engine)
        print(
            f"  load {load_s:.1f} s ({args.finished / load_s:.0f} sagas/s), "
            f"VACUUM ANALYZE {time.perf_counter() - began:.1f} s"
        )
        print(f"  sizes: {await sizes(engine)}")

        print(
            f"\n== claims: {args.due} due sagas, {args.batch} per claim, {args.rounds} "
            "alternating rounds per database"
        )
        found = await compare(
            {"empty": SagaWriter(empty_engine), "history": writer},
            args.batch,
            args.claims,
            args.rounds,
        )
        empty, loaded = found["empty"], found["history"]
        print(empty.line("empty"))
        print(loaded.line(f"{args.finished} finished"))
        print(loaded.versus(empty, "history/empty"))

        print("\n== EXPLAIN (ANALYZE, BUFFERS) of the claim statement (rolled back)")
        print(await explain_claim(engine, writer, args.batch))
        print("\n== EXPLAIN (ANALYZE, BUFFERS) of a prune batch's pick (rolled back)")
        print(await explain_prune(engine, timedelta(days=45), args.prune_batch))

        print("\n== saga prune alone")
        pruned, events, took = await run_prune(url, "45d", args.prune_batch)
        print(f"  {pruned / took:.0f} sagas/s ({events / took:.0f} events/s)")

        print("\n== saga prune while the claimer runs")
        before = await claim_loop(writer, args.batch, args.claims // 2)
        print(before.line("before prune"))
        stop = asyncio.Event()
        claimer = asyncio.create_task(claim_loop(writer, args.batch, None, stop))
        await asyncio.sleep(1.0)  # the claimer is past its warm-up when the prune starts
        try:
            pruned, events, took = await run_prune(url, "30d", args.prune_batch)
            # The prune proper: the process's last `took` seconds (not its start-up).
            ended = time.monotonic()
        finally:
            stop.set()
        during = (await claimer).within(ended - took, ended)
        print(f"  {pruned / took:.0f} sagas/s ({events / took:.0f} events/s)")
        if len(during.latencies) < 2:
            raise RuntimeError("the prune was too short to measure claims during it")
        print(during.line("during prune"))
        print(during.versus(before, "during/before"))
        print(f"  sagas left: {await count_sagas(engine)}")
    finally:
        await engine.dispose()
        await empty_engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--finished", type=int, default=1_000_000, help="Finished sagas to load.")
    parser.add_argument("--due", type=int, default=2000, help="Running sagas in the queue.")
    parser.add_argument("--claims", type=int, default=600, help="Claims measured per database.")
    parser.add_argument("--rounds", type=int, default=6, help="Alternations between databases.")
    parser.add_argument("--batch", type=int, default=50, help="Sagas per claim.")
    parser.add_argument("--chunk", type=int, default=50_000, help="Sagas per load transaction.")
    parser.add_argument("--prune-batch", type=int, default=1000, help="saga prune --batch-size.")
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:8]
    with (
        throwaway_database(f"bench_empty_{tag}") as empty_url,
        throwaway_database(f"bench_history_{tag}") as url,
    ):
        for each in (empty_url, url):
            migrate.upgrade(each)
        asyncio.run(bench(empty_url, url, args))


if __name__ == "__main__":
    main()
