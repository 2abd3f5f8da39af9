"""Retention: `saga prune` deletes finished sagas with their history, in batches, never waiting."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.cli import main
from orchestrator.clock import utcnow
from orchestrator.machine import Plan, SagaStatus, StepPlan, start
from orchestrator.store import retention
from orchestrator.store.engine import create_engine
from orchestrator.store.rows import HistoryEvent
from orchestrator.store.sagas import SagaWriter
from orchestrator.store.schema import events_table, sagas_table, start_keys_table

PLAN = Plan.sequential((StepPlan("a"), StepPlan("b")))
DAY = timedelta(days=1)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def saga_at(
    writer: SagaWriter, status: SagaStatus, updated: datetime, *, key: str | None = None
) -> uuid.UUID:
    """A saga last written at ``updated`` with ``status``: 1 start event, 2 more, a start key."""
    state = start(PLAN, updated - timedelta(minutes=1))
    saga_id, _ = await writer.create(
        saga_id=uuid.uuid4(),
        definition=("d", 1),
        saga_input={"n": 1},
        state=state,
        wake_at=updated,
        now=updated - timedelta(minutes=1),
        start_key=(key or uuid.uuid4().hex, "hash"),
    )
    stored = await writer.load(saga_id)
    assert stored is not None
    active = status in (SagaStatus.RUNNING, SagaStatus.COMPENSATING)
    history = [HistoryEvent("call", updated, step="a"), HistoryEvent("transition", updated)]
    written = await writer.record(
        stored,
        dataclasses.replace(state, status=status),
        updated,
        wake_at=updated + DAY if active else None,
        lease=None,
        history=history,
    )
    assert written is not None
    return saga_id


async def remaining(engine: AsyncEngine) -> tuple[set[uuid.UUID], int, int]:
    """The saga ids left, and how many events and start keys."""
    async with engine.connect() as conn:
        ids = set((await conn.execute(sa.select(sagas_table.c.id))).scalars())
        n_events = (
            await conn.execute(sa.select(sa.func.count()).select_from(events_table))
        ).scalar_one()
        n_keys = (
            await conn.execute(sa.select(sa.func.count()).select_from(start_keys_table))
        ).scalar_one()
    return ids, int(n_events), int(n_keys)


async def test_prune_deletes_only_old_finished_sagas_with_their_rows(engine: AsyncEngine) -> None:
    writer = SagaWriter(engine)
    now = utcnow()
    old = now - 40 * DAY
    doomed = {await saga_at(writer, SagaStatus.COMPLETED, old - i * DAY) for i in range(4)} | {
        await saga_at(writer, SagaStatus.COMPENSATED, old - i * DAY) for i in range(3)
    }
    kept = {
        await saga_at(writer, SagaStatus.COMPLETED, now - 2 * DAY),  # finished recently
        await saga_at(writer, SagaStatus.FAILED, old),  # parked: waits for an operator
        await saga_at(writer, SagaStatus.RUNNING, old),  # still in flight
        await saga_at(writer, SagaStatus.COMPENSATING, old),
    }
    cutoff = now - 30 * DAY

    assert await retention.count_prunable(engine, cutoff) == retention.Pruned(sagas=7, events=21)
    done = await retention.prune(engine, cutoff, batch_size=3)

    assert done == retention.Pruned(sagas=7, events=21, batches=3)
    ids, n_events, n_keys = await remaining(engine)
    assert ids == kept
    assert not ids & doomed
    assert (n_events, n_keys) == (3 * len(kept), len(kept))
    assert await retention.prune(engine, cutoff) == retention.Pruned(sagas=0, events=0)


async def test_prune_deletes_parked_sagas_only_when_asked(engine: AsyncEngine) -> None:
    writer = SagaWriter(engine)
    now = utcnow()
    parked = await saga_at(writer, SagaStatus.FAILED, now - 40 * DAY)
    recent = await saga_at(writer, SagaStatus.FAILED, now - DAY)
    cutoff = now - 30 * DAY

    assert (await retention.prune(engine, cutoff)).sagas == 0
    done = await retention.prune(engine, cutoff, include_failed=True)

    assert done == retention.Pruned(sagas=1, events=3, batches=1)
    ids, _, _ = await remaining(engine)
    assert parked not in ids
    assert recent in ids


async def test_a_saga_locked_by_a_worker_does_not_block_prune(
    engine: AsyncEngine, database_url: str
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite has one writer at a time")
    writer = SagaWriter(engine)
    old = utcnow() - 40 * DAY
    sagas = [await saga_at(writer, SagaStatus.COMPLETED, old) for _ in range(5)]
    held = sagas[2]
    worker = create_engine(database_url)
    try:
        async with worker.begin() as conn:
            await conn.execute(
                sa.select(sagas_table.c.id).where(sagas_table.c.id == held).with_for_update()
            )
            # Prune runs while the worker's transaction is open: it must finish on its own.
            done = await asyncio.wait_for(
                retention.prune(engine, utcnow() - 30 * DAY, batch_size=2), timeout=10
            )
            assert done.sagas == 4
        ids, n_events, n_keys = await remaining(engine)
        assert ids == {held}
        assert (n_events, n_keys) == (3, 1)
        # Once the worker let go, the next prune takes it.
        assert (await retention.prune(engine, utcnow() - 30 * DAY)).sagas == 1
    finally:
        await worker.dispose()


async def test_saga_prune_command(engine: AsyncEngine, database_url: str) -> None:
    writer = SagaWriter(engine)
    now = utcnow()
    for _ in range(3):
        await saga_at(writer, SagaStatus.COMPLETED, now - 40 * DAY)
    recent = await saga_at(writer, SagaStatus.COMPLETED, now - 2 * DAY)
    saga = str(Path(sys.executable).with_name("saga"))

    async def run(*args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            saga,
            "prune",
            "--database-url",
            database_url,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        assert process.returncode == 0, err.decode()
        return out.decode()

    assert (await run("--older-than", "30d", "--dry-run")).startswith(
        "would delete 3 sagas and 9 events"
    )
    assert len((await remaining(engine))[0]) == 4
    assert (await run("--older-than", "720h", "--batch-size", "2")).startswith(
        "deleted 3 sagas and 9 events"
    )
    assert (await remaining(engine))[0] == {recent}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--older-than", "30"], "Invalid value for '--older-than': '30' is not a duration"),
        (["--older-than", "thirty days"], "Invalid value for '--older-than'"),
        (["--older-than", "0d"], "Invalid value for '--older-than': must be longer than zero"),
        (["--older-than", "99999999d"], "Invalid value for '--older-than'"),
        (["--older-than", "30d", "--batch-size", "0"], "Invalid value for '--batch-size'"),
        ([], "Missing option '--older-than'"),
    ],
)
def test_saga_prune_refuses_bad_input(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["prune", "--database-url", "sqlite://", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
