"""Fixtures of the broker tests: the machine's RabbitMQ, example services consuming from it.

Every test uses queues of its own on the shared node (unique names, deleted
afterwards): the node itself is never reconfigured or stopped. A test that
must kill a broker starts a private node (``orchestrator.harness.rabbitmq``).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import httpx
import pytest

from orchestrator.harness.rabbitmq import RabbitNode, private_node, rabbitmq_installed
from participants.kit import ParticipantSettings
from participants.registry import SERVICES
from tests.participants.conftest import MakeDatabase, Templates, templates
from tests.support.databases import create_database, drop_database, pg_url, unique_name
from tests.support.fixtures import template_db
from tests.support.servers import serve_app

__all__ = ["template_db", "templates"]

SHARED_BROKER = "amqp://guest:guest@127.0.0.1:5672/%2F"

pytestmark = [pytest.mark.postgres]


async def broker_answers(url: str = SHARED_BROKER) -> bool:
    try:
        connection = await aio_pika.connect(url, timeout=3)
    except Exception:
        return False
    await connection.close()
    return True


@pytest.fixture
async def shared_broker() -> str:
    if not await broker_answers():
        pytest.skip("RabbitMQ does not answer at 127.0.0.1:5672")
    return SHARED_BROKER


@pytest.fixture
def make_pg_database(templates: Templates) -> Iterator[MakeDatabase]:
    """A fresh, migrated PostgreSQL database for a service, returned as its URL."""
    created: list[str] = []

    def make(service: str) -> str:
        name = unique_name(f"t_{service}")
        create_database(name, template=templates.postgres_name(service))
        created.append(name)
        return pg_url(name)

    yield make
    for name in created:
        drop_database(name)


@dataclass
class Service:
    """One example service, served over HTTP and consuming its own queue."""

    name: str
    queue: str
    http: httpx.AsyncClient
    app: Any
    settings: ParticipantSettings

    def address(self, broker: str) -> str:
        return f"{broker}?queue={self.queue}"


@dataclass
class Services:
    broker: str
    by_name: dict[str, Service] = field(default_factory=dict)
    queues: list[str] = field(default_factory=list)

    def __getitem__(self, name: str) -> Service:
        return self.by_name[name]


@contextlib.asynccontextmanager
async def serve_service(
    service: str, database_url: str, broker: str | None, queue: str, **values: Any
) -> AsyncIterator[Service]:
    """``service`` on ``database_url``, over HTTP and (with ``broker``) consuming ``queue``."""
    spec = SERVICES[service]
    settings = ParticipantSettings(
        database_url=database_url,
        enable_faults=True,
        amqp_url=broker,
        amqp_queue=queue,
        **values,
    )
    app = spec.create_app(settings)
    async with serve_app(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        yield Service(service, queue, http, app, settings)


async def delete_queues(broker: str, queues: list[str]) -> None:
    connection = await aio_pika.connect(broker, timeout=5)
    async with connection:
        channel = await connection.channel()
        for queue in queues:
            with contextlib.suppress(Exception):
                await channel.queue_delete(queue)


@contextlib.asynccontextmanager
async def running_services(broker: str, make_database: MakeDatabase) -> AsyncIterator[Services]:
    """The four example services, seeded, each consuming a queue of its own on ``broker``."""
    found = Services(broker)
    run = uuid.uuid4().hex[:8]
    try:
        async with contextlib.AsyncExitStack() as stack:
            for name, spec in SERVICES.items():
                url = make_database(name)
                await spec.seed(url)
                queue = f"test.{run}.{name}"
                found.queues.append(queue)
                found.by_name[name] = await stack.enter_async_context(
                    serve_service(name, url, broker, queue)
                )
            for service in found.by_name.values():
                await consuming(service)
            yield found
    finally:
        with contextlib.suppress(Exception):
            await delete_queues(broker, found.queues)


@pytest.fixture
async def services(shared_broker: str, make_pg_database: MakeDatabase) -> AsyncIterator[Services]:
    """The four example services on the machine's broker."""
    async with running_services(shared_broker, make_pg_database) as found:
        yield found


@pytest.fixture
def private_broker() -> Iterator[RabbitNode]:
    """A RabbitMQ node of the test's own, to crash."""
    if not rabbitmq_installed():
        pytest.skip("the RabbitMQ server is not installed")
    with private_node() as node:
        yield node


async def consuming(service: Service, timeout_s: float = 15) -> None:
    """Until the service's consumer has declared its queue and consumes it."""
    consumer = service.app.state.kit_consumer
    await asyncio.wait_for(consumer.connected.wait(), timeout_s)
