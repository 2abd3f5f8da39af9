"""The store's one "unavailable" error: raised for outages, never for bugs or cancellations."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.clock import utcnow
from orchestrator.harness.proxy import Cut, PartitionProxy
from orchestrator.machine import Plan, StepPlan, start
from orchestrator.store.engine import create_engine
from orchestrator.store.errors import StoreUnavailable
from orchestrator.store.sagas import SagaWriter
from orchestrator.store.schema import definitions_table
from tests.support.databases import PG_USER
from tests.support.servers import free_port


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=1)
    yield engine
    await engine.dispose()


async def test_an_unreachable_database_is_unavailable() -> None:
    engine = create_engine(f"postgresql+asyncpg://{PG_USER}@127.0.0.1:{free_port()}/nowhere")
    try:
        with pytest.raises(StoreUnavailable):
            await SagaWriter(engine).load(uuid.uuid4())
    finally:
        await engine.dispose()


async def test_a_dropped_connection_is_unavailable(engine: AsyncEngine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no server to drop the connection")
    with pytest.raises(StoreUnavailable):
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT pg_terminate_backend(pg_backend_pid())"))
    async with engine.connect() as conn:  # the pool replaced the dead connection
        assert (await conn.execute(sa.text("SELECT 1"))).scalar_one() == 1


async def test_an_exhausted_pool_is_unavailable(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the fixed pool and its timeout are PostgreSQL's")
    engine = create_engine(database_url, pool_size=1)
    engine.sync_engine.pool._timeout = 0.1  # type: ignore[attr-defined]  # not 5 s
    try:
        async with engine.connect():
            with pytest.raises(StoreUnavailable):
                async with engine.connect():
                    pass
    finally:
        await engine.dispose()


async def test_a_bad_statement_is_a_bug_not_an_outage(engine: AsyncEngine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite reports bad statements as OperationalError, which is unavailable")
    with pytest.raises(DBAPIError):
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1 / 0"))


async def test_a_constraint_stays_an_integrity_error(engine: AsyncEngine) -> None:
    row = {"name": "d", "version": 1, "spec": {}, "fingerprint": "f", "created_at": utcnow()}
    async with engine.begin() as conn:
        await conn.execute(sa.insert(definitions_table), [row])
    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(sa.insert(definitions_table), [row])


async def test_a_repeated_start_key_still_returns_the_first_saga(engine: AsyncEngine) -> None:
    writer = SagaWriter(engine)
    now = utcnow()
    state = start(Plan.sequential((StepPlan("a"),)), now)
    first = await writer.create(
        saga_id=uuid.uuid4(),
        definition=("d", 1),
        saga_input={},
        state=state,
        wake_at=now,
        now=now,
        start_key=("k", "h"),
    )
    again = await writer.create(
        saga_id=uuid.uuid4(),
        definition=("d", 1),
        saga_input={},
        state=state,
        wake_at=now,
        now=now,
        start_key=("k", "h"),
    )
    assert again == (first[0], False)


async def test_a_cancelled_statement_stays_a_cancellation(engine: AsyncEngine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no sleeping statement to cancel")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2), engine.connect() as conn:
            await conn.execute(sa.text("SELECT pg_sleep(5)"))


@contextlib.asynccontextmanager
async def through_a_proxy(database_url: str) -> AsyncIterator[tuple[PartitionProxy, AsyncEngine]]:
    """An engine on ``database_url`` reaching PostgreSQL through a partition proxy."""
    url = make_url(database_url)
    async with PartitionProxy((url.host or "127.0.0.1", url.port or 5432)) as proxy:
        engine = create_engine(
            url.set(port=proxy.port).render_as_string(hide_password=False),
            pool_size=1,
            connect_timeout_s=0.5,
            command_timeout_s=0.5,
        )
        try:
            yield proxy, engine
        finally:
            proxy.heal()
            await engine.dispose()


@pytest.mark.parametrize("cut", ["both", "to_server", "to_client"])
async def test_a_database_gone_silent_is_unavailable_not_a_hang(
    database_url: str, cut: Cut
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has no network to cut")
    async with through_a_proxy(database_url) as (proxy, engine):
        writer = SagaWriter(engine)
        assert await writer.load(uuid.uuid4()) is None  # a pooled, working connection
        proxy.cut(cut)
        # The pooled connection's statement gets no answer, then a new one none either.
        for _ in range(2):
            with pytest.raises(StoreUnavailable, match="did not answer"):
                await writer.load(uuid.uuid4())
        proxy.heal()
        assert await writer.load(uuid.uuid4()) is None
