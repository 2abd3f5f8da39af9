"""Baseline: sagas/s and database commits per step of a 3-step saga.

Starts, as separate processes, the benchmark participant and one ``saga serve``
on throwaway PostgreSQL databases, registers a 3-step definition, starts
sagas over REST keeping ``--in-flight`` running, and reports throughput,
latency (from the saga rows), and commits per step: the orchestrator
database's ``pg_stat_database.xact_commit`` delta, cross-checked with the
orchestrator's own commit counter.

    .venv/bin/python benchmarks/baseline.py --sagas 2000 --in-flight 50
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.servers import free_port, wait_http  # noqa: E402

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def admin(sql: str) -> None:
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(sql)


def xact_commits(db: str) -> int:
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (db,)
        ).fetchone()
    return int(row[0]) if row else 0


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def run(args: argparse.Namespace) -> None:
    tag = uuid.uuid4().hex[:8]
    odb, pdb = f"bench_orch_{tag}", f"bench_part_{tag}"
    admin(f"CREATE DATABASE {odb}")
    admin(f"CREATE DATABASE {pdb}")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        pport, oport = free_port(), free_port()
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "benchmarks/participant.py"),
                    f"postgresql://postgres@127.0.0.1:5432/{pdb}",
                    str(pport),
                ]
            )
        )
        env = {
            **os.environ,
            "SAGA_DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{odb}",
            "SAGA_PARTICIPANTS": f'{{"bench": "http://127.0.0.1:{pport}"}}',
            "SAGA_LOG_LEVEL": "WARNING",
        }
        saga = str(Path(sys.executable).with_name("saga"))
        procs.append(subprocess.Popen([saga, "serve", "--port", str(oport)], env=env))
        wait_http(f"http://127.0.0.1:{pport}/healthz")
        wait_http(f"http://127.0.0.1:{oport}/readyz")
        api = f"http://127.0.0.1:{oport}"
        steps = [
            {
                "name": f"s{i}",
                "participant": "bench",
                "kind": "compensatable",
                "action": {"path": f"/step/{i}"},
                "compensation": {"path": f"/step/{i}"},
            }
            for i in (1, 2, 3)
        ]
        asyncio.run(drive(api, odb, steps, args))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
        admin(f"DROP DATABASE IF EXISTS {odb} WITH (FORCE)")
        admin(f"DROP DATABASE IF EXISTS {pdb} WITH (FORCE)")


async def drive(
    api: str, odb: str, steps: list[dict[str, object]], args: argparse.Namespace
) -> None:
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:
        await client.post("/v1/definitions", json={"name": "bench", "steps": steps})
        await measure(client, odb, args, warmup=True)
        await measure(client, odb, args, warmup=False)


async def measure(
    client: httpx.AsyncClient, odb: str, args: argparse.Namespace, warmup: bool
) -> None:
    """Keep ``in_flight`` sagas running until ``total`` have finished.

    Finished sagas are found with one query per 10 ms on the orchestrator's
    database (ended by ROLLBACK, so it adds no commit to the count), not by
    polling the API, which would measure the polling.
    """
    total = max(args.sagas // 10, 50) if warmup else args.sagas
    before_commits = xact_commits(odb)
    before_metric = metric((await client.get("/metrics")).text, "saga_database_commits_total")
    watcher = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{odb}")
    ids: list[str] = []
    in_flight: set[str] = set()
    started = time.perf_counter()

    async def start_one() -> None:
        r = await client.post("/v1/sagas", json={"definition": "bench", "input": {}})
        sid = r.json()["id"]
        ids.append(sid)
        in_flight.add(sid)

    try:
        while len(ids) < total or in_flight:
            room = min(args.in_flight - len(in_flight), total - len(ids))
            if room > 0:
                await asyncio.gather(*(start_one() for _ in range(room)))
            await asyncio.sleep(0.01)
            tr = watcher.transaction(readonly=True)
            await tr.start()
            done = await watcher.fetch(
                "SELECT id::text FROM sagas WHERE id = ANY($1::uuid[]) "
                "AND status IN ('completed', 'compensated', 'failed')",
                list(in_flight),
            )
            await tr.rollback()
            in_flight.difference_update(r[0] for r in done)
    finally:
        await watcher.close()
    elapsed = time.perf_counter() - started
    if warmup:
        return
    await asyncio.sleep(1.0)
    commits = xact_commits(odb) - before_commits
    own = metric((await client.get("/metrics")).text, "saga_database_commits_total") - before_metric
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{odb}") as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM updated_at - created_at) * 1000, status FROM sagas "
            "WHERE id = ANY(%s::uuid[])",
            (ids,),
        ).fetchall()
    latencies = sorted(float(r[0]) for r in rows)
    completed = sum(1 for r in rows if r[1] == "completed")
    steps = 3 * total
    print(f"sagas: {total} (completed {completed}), in flight: {args.in_flight}")
    print(f"throughput: {total / elapsed:.1f} sagas/s over {elapsed:.1f}s")
    p50, p99 = statistics.median(latencies), latencies[int(len(latencies) * 0.99) - 1]
    print(f"saga latency (start -> completed, from the rows): p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    print(
        f"orchestrator DB commits (pg_stat_database, incl. empty claim polls): {commits}"
        f" = {commits / steps:.2f} per step, {commits / total:.2f} per saga"
    )
    print(f"orchestrator's own commit counter: {own:.0f} = {own / steps:.2f} per step")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sagas", type=int, default=2000)
    parser.add_argument("--in-flight", type=int, default=50)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
