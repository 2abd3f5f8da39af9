"""Scale of history: claims on an empty database, then beside N finished sagas, then during a prune.

On a throwaway PostgreSQL database migrated to head:

1. empty: ``--due`` running sagas are bulk-inserted, due now; one claimer
   takes them ``--batch`` at a time with ``SagaWriter.claim`` and writes one
   transition for each with ``SagaWriter.record`` (which makes it due again,
   so the queue never runs dry). Reports the claim statement's latency
   (p50/p99 over ``--claims`` claims) and claimed+recorded sagas per second.
2. ``--finished`` completed or compensated sagas are bulk-loaded with SQL
   (``INSERT ... SELECT generate_series``): a real machine state as JSON, an
   input, a start key and 6 history rows each, finished over the last 60 days.
   The load time is printed. After ``VACUUM ANALYZE`` the same measurement runs
   again and the ratios to the empty database are printed, with
   ``EXPLAIN (ANALYZE, BUFFERS)`` of the claim statement the writer sends.
3. ``saga prune --older-than 45d`` runs alone (sagas deleted per second), then
   ``saga prune --older-than 30d`` runs while the claimer goes on: claim
   latency during the prune is compared with the latency before it.

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
from orchestrator.store import migrate  # noqa: E402
from orchestrator.store.engine import create_engine  # noqa: E402
from orchestrator.store.sagas import HistoryEvent, SagaWriter, StoredSaga  # noqa: E402
from tests.support.databases import throwaway_database  # noqa: E402

PLAN = Plan.sequential((StepPlan("reserve"), StepPlan("charge"), StepPlan("ship")))
INPUT = {"account": "alice", "sku": "A1", "qty": 2, "amount": 30}
LEASE_S = 30.0
WARMUP_CLAIMS = 20


@dataclass(frozen=True)
class Figures:
    claims: int
    p50_ms: float
    p99_ms: float
    sagas_per_s: float

    def line(self, label: str) -> str:
        return (
            f"{label:<22} claim p50 {self.p50_ms:7.2f} ms  p99 {self.p99_ms:7.2f} ms  "
            f"claim+record {self.sagas_per_s:8.0f} sagas/s  ({self.claims} claims)"
        )


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

# Sagas of a finished measurement leave the queue as if they had completed.
_RETIRE_DUE = sa.text(
    "UPDATE sagas SET status = 'completed', wake_at = NULL, lease_owner = NULL, "
    "lease_expires_at = NULL WHERE status = 'running'"
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
        await conn.execute(_RETIRE_DUE)
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
) -> Figures:
    """Claim ``batch`` sagas and record a transition for each, ``claims`` times or to ``stop``."""
    latencies: list[float] = []
    recorded = 0
    measured_from = time.perf_counter()
    i = 0
    while (claims is None or i < WARMUP_CLAIMS + claims) and not (stop and stop.is_set()):
        if i == WARMUP_CLAIMS:
            measured_from, recorded = time.perf_counter(), 0
        began = time.perf_counter()
        got = await writer.claim("bench", utcnow(), LEASE_S, batch)
        took = time.perf_counter() - began
        if not got:
            raise RuntimeError("nothing was due: raise --due")
        if i >= WARMUP_CLAIMS:
            latencies.append(took * 1000)
        await asyncio.gather(*(_record(writer, saga) for saga, _ in got))
        recorded += len(got)
        i += 1
    elapsed = time.perf_counter() - measured_from
    if len(latencies) < 2:
        raise RuntimeError("too few claims were measured")
    centiles = statistics.quantiles(latencies, n=100)
    return Figures(len(latencies), centiles[49], centiles[98], recorded / elapsed)


@contextmanager
def captured_claim(engine: AsyncEngine) -> Iterator[list[tuple[str, Any]]]:
    """The claim statements ``engine`` sends (SQL and parameters as the driver gets them)."""
    seen: list[tuple[str, Any]] = []

    def before(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, _many: bool
    ) -> None:
        if "SKIP LOCKED" in statement:
            seen.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", before)


async def explain_claim(engine: AsyncEngine, writer: SagaWriter, batch: int) -> str:
    """``EXPLAIN (ANALYZE, BUFFERS)`` of the claim statement the writer sends, rolled back."""
    with captured_claim(engine) as seen:
        claimed = await writer.claim("explain", utcnow(), LEASE_S, batch)
    for saga, _ in claimed:  # give them back
        await _record(writer, saga)
    if not seen:
        raise RuntimeError("the claim statement was not seen")
    statement, parameters = seen[-1]
    async with engine.connect() as conn:
        trans = await conn.begin()
        rows = await conn.exec_driver_sql(
            "EXPLAIN (ANALYZE, BUFFERS) " + statement, tuple(parameters)
        )
        plan = "\n".join(row[0] for row in rows)
        await trans.rollback()
    return f"{statement.strip()}\n\n{plan}"


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
    """``saga prune`` as a separate process; returns (sagas, events, seconds)."""
    saga = str(Path(sys.executable).with_name("saga"))
    args = ["prune", "--older-than", older_than, "--batch-size", str(batch_size)]
    began = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        saga, *args, "--database-url", url, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    took = time.perf_counter() - began
    text = out.decode().strip()
    found = re.match(r"deleted (\d+) sagas and (\d+) events", text)
    if process.returncode != 0 or found is None:
        raise RuntimeError(f"saga prune failed: {text}")
    print(f"  $ saga {' '.join(args)}\n  {text}")
    return int(found.group(1)), int(found.group(2)), took


def ratio(loaded: float, empty: float) -> str:
    return f"{loaded / empty:5.2f}x ({(loaded / empty - 1) * 100:+.0f}%)"


async def bench(url: str, args: argparse.Namespace) -> None:
    engine = create_engine(url, pool_size=10)
    writer = SagaWriter(engine)
    try:
        print(f"== empty database: {args.due} due sagas")
        await load_due(engine, args.due)
        await vacuum_analyze(engine)
        empty = await claim_loop(writer, args.batch, args.claims)
        print(empty.line("empty"))

        print(f"== loading {args.finished} finished sagas (6 events and a start key each)")
        load_s = await load_finished(engine, args.finished, args.chunk)
        await load_due(engine, args.due)
        began = time.perf_counter()
        await vacuum_analyze(engine)
        print(
            f"  load {load_s:.1f} s ({args.finished / load_s:.0f} sagas/s), "
            f"VACUUM ANALYZE {time.perf_counter() - began:.1f} s"
        )
        print(f"  sizes: {await sizes(engine)}")
        loaded = await claim_loop(writer, args.batch, args.claims)
        print(loaded.line(f"{args.finished} finished"))
        print(
            f"  ratio loaded/empty: claim p50 {ratio(loaded.p50_ms, empty.p50_ms)}, "
            f"p99 {ratio(loaded.p99_ms, empty.p99_ms)}, "
            f"throughput {ratio(loaded.sagas_per_s, empty.sagas_per_s)}"
        )
        print("\n== EXPLAIN (ANALYZE, BUFFERS) of the claim statement (rolled back)")
        print(await explain_claim(engine, writer, args.batch))

        print("\n== saga prune alone")
        pruned, events, took = await run_prune(url, "45d", args.prune_batch)
        print(f"  {pruned / took:.0f} sagas/s ({events / took:.0f} events/s), wall {took:.1f} s")

        print("\n== saga prune while the claimer runs")
        stop = asyncio.Event()
        claimer = asyncio.create_task(claim_loop(writer, args.batch, None, stop))
        await asyncio.sleep(1.0)  # the claimer is past its warm-up when the prune starts
        try:
            pruned, events, took = await run_prune(url, "30d", args.prune_batch)
        finally:
            stop.set()
        during = await claimer
        print(f"  {pruned / took:.0f} sagas/s ({events / took:.0f} events/s), wall {took:.1f} s")
        print(during.line("during prune"))
        print(
            f"  ratio during/before: claim p50 {ratio(during.p50_ms, loaded.p50_ms)}, "
            f"p99 {ratio(during.p99_ms, loaded.p99_ms)}, "
            f"throughput {ratio(during.sagas_per_s, loaded.sagas_per_s)}"
        )
        print(f"  sagas left: {await count_sagas(engine)}")
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--finished", type=int, default=1_000_000, help="Finished sagas to load.")
    parser.add_argument("--due", type=int, default=2000, help="Running sagas in the queue.")
    parser.add_argument("--claims", type=int, default=400, help="Claims measured per phase.")
    parser.add_argument("--batch", type=int, default=50, help="Sagas per claim.")
    parser.add_argument("--chunk", type=int, default=50_000, help="Sagas per load transaction.")
    parser.add_argument("--prune-batch", type=int, default=1000, help="saga prune --batch-size.")
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:8]
    with throwaway_database(f"bench_history_{tag}") as url:
        migrate.upgrade(url)
        asyncio.run(bench(url, args))


if __name__ == "__main__":
    main()
