"""The store's guarantees, on PostgreSQL and SQLite alike (one suite, both backends)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.clock import utcnow
from orchestrator.machine import Plan, StepPlan, start
from orchestrator.store.engine import create_engine
from orchestrator.store.rows import HistoryEvent, Lease, StoredSaga
from orchestrator.store.sagas import SagaWriter
from orchestrator.store.schema import metadata

PLAN = Plan.sequential((StepPlan("a"), StepPlan("b")))


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def claim(
    writer: SagaWriter, owner: str, now: datetime, lease_s: float, limit: int
) -> list[StoredSaga]:
    return [saga for saga, _previous in await writer.claim(owner, now, lease_s, limit)]


async def new_saga(writer: SagaWriter, due_in_s: float = 0) -> uuid.UUID:
    now = utcnow()
    saga_id, created = await writer.create(
        saga_id=uuid.uuid4(),
        definition=("d", 1),
        saga_input={},
        state=start(PLAN, now),
        wake_at=now + timedelta(seconds=due_in_s),
        now=now,
    )
    assert created
    return saga_id


async def test_migrations_match_the_models(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
        )
    assert diff == []


async def test_claim_takes_due_sagas_once(engine: AsyncEngine) -> None:
    writer = SagaWriter(engine)
    due = {await new_saga(writer) for _ in range(5)}
    later = await new_saga(writer, due_in_s=60)
    first = await claim(writer, "w1", utcnow(), 10, limit=3)
    second = await claim(writer, "w2", utcnow(), 10, limit=10)
    assert len(first) == 3
    assert len(second) == 2
    assert {s.id for s in first} | {s.id for s in second} == due
    assert later not in {s.id for s in first + second}
    assert await claim(writer, "w3", utcnow(), 10, limit=10) == []
    assert all(s.version == 2 and s.lease_owner == "w1" for s in first)


async def test_concurrent_claims_never_share_a_saga(engine: AsyncEngine) -> None:
    writer = SagaWriter(engine)
    due = {await new_saga(writer) for _ in range(40)}
    batches = await asyncio.gather(
        *(claim(writer, f"w{i}", utcnow(), 10, limit=7) for i in range(8))
    )
    claimed = [s.id for batch in batches for s in batch]
    assert len(claimed) == len(set(claimed)) == 40
    assert set(claimed) == due


async def test_expired_lease_is_taken_over_and_the_old_holder_is_fenced(
    engine: AsyncEngine,
) -> None:
    writer = SagaWriter(engine)
    await new_saga(writer)
    now = utcnow()
    [held] = await claim(writer, "old", now, 1, limit=1)
    assert await claim(writer, "new", now, 1, limit=1) == []  # lease still valid
    [(taken, previous_owner)] = await writer.claim("new", now + timedelta(seconds=2), 1, limit=1)
    assert previous_owner == "old"  # a takeover
    assert taken.id == held.id
    assert taken.version == held.version + 1
    # The old holder wakes up and writes: rejected by the version check.
    late = await writer.record(
        held,
        held.state,
        utcnow(),
        wake_at=None,
        lease=None,
        history=[HistoryEvent("call", utcnow())],
    )
    assert late is None
    stored = await writer.load(held.id)
    assert stored is not None
    assert stored.lease_owner == "new"
    assert stored.version == taken.version


async def test_record_is_conditional_and_writes_history_atomically(engine: AsyncEngine) -> None:
    writer = SagaWriter(engine)
    saga_id = await new_saga(writer)
    [saga] = await claim(writer, "w", utcnow(), 10, limit=1)
    lease = Lease("w", utcnow() + timedelta(seconds=10))
    written = await writer.record(
        saga,
        saga.state,
        utcnow(),
        wake_at=None,
        lease=lease,
        history=[HistoryEvent("call", utcnow(), step="a")],
    )
    assert written is not None
    assert written.version == saga.version + 1
    again = await writer.record(
        saga,
        saga.state,
        utcnow(),
        wake_at=None,
        lease=lease,
        history=[HistoryEvent("call", utcnow(), step="lost")],
    )
    assert again is None
    from orchestrator.store.reads import SagaReader

    history = await SagaReader(engine).history(saga_id)
    assert [e["kind"] for e in history] == ["started", "call"]
    assert history[1]["step"] == "a"


async def test_renewal_extends_only_own_leases(engine: AsyncEngine) -> None:
    writer = SagaWriter(engine)
    await new_saga(writer)
    await new_saga(writer)
    mine = await claim(writer, "me", utcnow(), 5, limit=1)
    theirs = await claim(writer, "them", utcnow(), 5, limit=1)
    later = utcnow() + timedelta(seconds=60)
    kept = await writer.renew("me", [mine[0].id, theirs[0].id], later)
    assert kept == {mine[0].id}
    stored = await writer.load(mine[0].id)
    assert stored is not None
    assert stored.wake_at == later
    assert stored.version == mine[0].version


async def test_release_all_makes_sagas_due(engine: AsyncEngine) -> None:
    writer = SagaWriter(engine)
    for _ in range(3):
        await new_saga(writer)
    await claim(writer, "leaving", utcnow(), 60, limit=10)
    assert await writer.release_all("leaving", utcnow()) == 3
    assert len(await claim(writer, "staying", utcnow(), 60, limit=10)) == 3
