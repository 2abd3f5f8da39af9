"""Participants over RabbitMQ: command and reply with the guarantees of HTTP.

Real services (uvicorn, PostgreSQL) consume commands from queues of their own
on the machine's RabbitMQ; a real orchestrator (PostgreSQL) publishes them.
"""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.settings import Settings
from participants.kit.amqp import CommandConsumer
from participants.order_saga import EXAMPLE_INPUT, ORDER_DEFINITION
from tests.broker.conftest import Service, Services, delete_queues, serve_service
from tests.participants.conftest import MakeDatabase
from tests.participants.helpers import ledger
from tests.support.orchestrator import (
    cloned_database,
    fast_settings,
    running_orchestrator,
    wait_final,
)

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

BROKER_SERVICES = {
    "amqp": {"orders", "inventory", "payments", "shipping"},
    "mixed": {"payments", "inventory"},
}


def participants_of(services: Services, over_broker: set[str]) -> dict[str, list[str]]:
    return {
        name: [s.address(services.broker)] if name in over_broker else [str(s.http.base_url)]
        for name, s in services.by_name.items()
    }


@pytest.fixture
def orchestrator_db(template_db: str) -> Any:
    with cloned_database(template_db) as url:
        yield url


async def metric(client: httpx.AsyncClient, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    text = (await client.get("/metrics")).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


@pytest.mark.parametrize("mode", ["amqp", "mixed"])
async def test_order_sagas_over_the_broker_complete_and_compensate_once(
    mode: str, services: Services, orchestrator_db: str
) -> None:
    settings = fast_settings(orchestrator_db, participants_of(services, BROKER_SERVICES[mode]))
    async with running_orchestrator(settings) as api:
        assert (await api.post("/v1/definitions", json=ORDER_DEFINITION)).status_code == 201
        poor = {**EXAMPLE_INPUT, "amount": 10**9}  # the pivot refuses: compensated
        ids = []
        for saga_input in (EXAMPLE_INPUT, EXAMPLE_INPUT, poor):
            started = await api.post("/v1/sagas", json={"definition": "order", "input": saga_input})
            assert started.status_code == 201, started.text
            ids.append(started.json()["id"])
        finals = [await wait_final(api, saga_id, timeout_s=60) for saga_id in ids]
        assert [f["status"] for f in finals] == ["completed", "completed", "compensated"], finals

        for name in BROKER_SERVICES[mode]:
            published = await metric(api, "saga_broker_published_total", participant=name)
            matched = await metric(
                api, "saga_broker_replies_total", participant=name, kind="matched"
            )
            assert published >= 1, name
            assert matched == published, (name, published, matched)
        for name in {"orders", "payments", "inventory", "shipping"} - BROKER_SERVICES[mode]:
            assert await metric(api, "saga_broker_published_total", participant=name) == 0
        seen = (await api.get("/v1/participants")).json()["items"]
        by_name = {p["name"]: p for p in seen}
        for name in BROKER_SERVICES[mode]:
            shown = by_name[name]
            assert shown["transport"] == "amqp", shown
            assert shown["health"] == "up", shown
            assert shown["urls"][0]["consumers"] == 1, shown
            assert "guest:guest" not in json.dumps(shown), "the broker password is shown"

    charges = await ledger(services["payments"].http)
    assert sorted(charges.values()) == ["applied", "applied", "rejected"], charges
    events = [await api_events(services, saga_id) for saga_id in ids]
    assert all(events)


async def api_events(services: Services, saga_id: str) -> dict[str, str]:
    """Every service's ledger rows of one saga (each key once, by construction of the ledger)."""
    rows: dict[str, str] = {}
    for service in services.by_name.values():
        rows.update(await ledger(service.http, saga_id))
    return rows


class Reply:
    """A reply queue of the test's own, acting as the orchestrator."""

    def __init__(self, channel: aio_pika.abc.AbstractChannel, queue: aio_pika.abc.AbstractQueue):
        self.channel = channel
        self.queue = queue
        self.received: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()

    async def command(self, target: str, key: str, path: str, body: Any, attempt: int) -> None:
        saga, step, _ = key.split(":")
        await self.channel.default_exchange.publish(
            aio_pika.Message(
                json.dumps(body).encode(),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=key,
                type=path,
                correlation_id=uuid.uuid4().hex,
                reply_to=self.queue.name,
                headers={"X-Saga-Id": saga, "X-Saga-Step": step, "X-Saga-Attempt": str(attempt)},
            ),
            routing_key=target,
        )

    async def next(self, timeout_s: float = 15) -> tuple[int, Any]:
        message = await asyncio.wait_for(self.received.get(), timeout_s)
        return int(message.headers["status"]), json.loads(message.body)  # type: ignore[arg-type]


@pytest.fixture
async def replies(shared_broker: str) -> AsyncIterator[Reply]:
    connection = await aio_pika.connect(shared_broker)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue("", exclusive=True, auto_delete=True)
        reply = Reply(channel, queue)
        await queue.consume(reply.received.put, no_ack=True)
        yield reply


def dies_after_answering(app: Any, consumer: list[CommandConsumer]) -> Any:
    """``app``, but the consumer serving it loses its connection right after the app answered:
    after the commit, before the reply and the acknowledgement (a process killed there)."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        await app(scope, receive, send)
        if scope["type"] == "http" and consumer[0]._connection is not None:
            await consumer[0]._connection.close()

    return wrapped


@pytest.fixture
async def payments_without_consumer(
    shared_broker: str, make_pg_database: MakeDatabase
) -> AsyncIterator[Service]:
    from participants.registry import SERVICES

    url = make_pg_database("payments")
    await SERVICES["payments"].seed(url)
    queue = f"test.{uuid.uuid4().hex[:8]}.payments"
    try:
        async with serve_service("payments", url, None, queue) as service:
            yield service
    finally:
        await delete_queues(shared_broker, [queue])


async def test_a_command_redelivered_after_the_consumer_died_is_applied_once(
    shared_broker: str, payments_without_consumer: Service, replies: Reply
) -> None:
    payments = payments_without_consumer
    kit = payments.app.state.kit
    doomed: list[CommandConsumer] = []
    doomed.append(
        CommandConsumer(
            dies_after_answering(payments.app, doomed), shared_broker, payments.queue, kit.metrics
        )
    )
    doomed[0].start()
    await asyncio.wait_for(doomed[0].connected.wait(), 15)
    key = f"{uuid.uuid4()}:charge:action"
    body = {"account": "alice", "amount": 7, "order_id": "o-1"}
    await replies.command(payments.queue, key, "/charges", body, attempt=1)

    await asyncio.sleep(1.0)  # applied and committed; no reply, not acknowledged
    assert (await ledger(payments.http)) == {key: "applied"}
    assert replies.received.empty()
    await doomed[0].stop()

    survivor = CommandConsumer(payments.app, shared_broker, payments.queue, kit.metrics)
    survivor.start()
    try:
        status, answer = await replies.next()
        assert status == 201, answer
        assert answer["amount"] == 7
        metrics = (await payments.http.get("/metrics")).text
        assert 'participant_commands_total{outcome="redelivered",queue="' in metrics
        assert 'participant_idempotent_replays_total{endpoint="/charges"} 1.0' in metrics
        balances = (await payments.http.get("/accounts/alice")).json()
    finally:
        await survivor.stop()
    assert (await ledger(payments.http)) == {key: "applied"}
    assert balances["balance"] == 1000 - 7, balances


async def test_a_reply_lost_with_the_consumer_is_recovered_by_the_retry_and_a_late_one_ignored(
    shared_broker: str, payments_without_consumer: Service, orchestrator_db: str
) -> None:
    payments = payments_without_consumer
    kit = payments.app.state.kit
    definition = copy.deepcopy(ORDER_DEFINITION)
    charge = next(s for s in definition["steps"] if s["name"] == "charge")
    definition.update(name="charge_only", steps=[{**charge, "timeout_ms": 500}])
    definition["steps"][0]["action"]["body"]["order_id"] = "o-2"
    doomed: list[CommandConsumer] = []
    doomed.append(
        CommandConsumer(
            dies_after_answering(payments.app, doomed), shared_broker, payments.queue, kit.metrics
        )
    )
    doomed[0].start()
    await asyncio.wait_for(doomed[0].connected.wait(), 15)
    settings = fast_settings(orchestrator_db, {"payments": [payments.address(shared_broker)]})
    async with running_orchestrator(settings) as api:
        assert (await api.post("/v1/definitions", json=definition)).status_code == 201
        started = await api.post(
            "/v1/sagas", json={"definition": "charge_only", "input": EXAMPLE_INPUT}
        )
        saga_id = started.json()["id"]
        # Attempt 1 is applied, then its consumer dies: no reply, and the attempt times out.
        await asyncio.sleep(1.0)
        await doomed[0].stop()
        survivor = CommandConsumer(payments.app, shared_broker, payments.queue, kit.metrics)
        survivor.start()
        try:
            final = await wait_final(api, saga_id, timeout_s=30)
            assert final["status"] == "completed", final
            events = (await api.get(f"/v1/sagas/{saga_id}/events")).json()["items"]
            calls = [e for e in events if e["kind"] == "call"]
            assert calls[0]["outcome"] == "transient", calls
            assert "timed out" in calls[0]["detail"]["error"], calls
            assert calls[-1]["outcome"] == "succeeded", calls
            # The redelivered attempt 1 answers too, after its attempt gave up: ignored, counted.
            for _ in range(100):
                if await metric(api, "saga_broker_replies_total", kind="late") >= 1:
                    break
                await asyncio.sleep(0.1)
            assert await metric(api, "saga_broker_replies_total", kind="late") == 1
        finally:
            await survivor.stop()
    rows = await ledger(payments.http, saga_id)
    assert rows == {f"{saga_id}:charge:action": "applied"}, rows


async def test_a_queue_nobody_declared_is_a_transient_failure_naming_it(
    shared_broker: str, orchestrator_db: str
) -> None:
    step = {
        "name": "charge",
        "participant": "payments",
        "kind": "pivot",
        "action": {"path": "/charges", "body": {"amount": 1}},
        "retry": {"max_attempts": 2, "initial_backoff_ms": 10, "max_backoff_ms": 10},
        "timeout_ms": 1000,
    }
    queue = f"test.{uuid.uuid4().hex[:8]}.nobody"
    settings = fast_settings(orchestrator_db, {"payments": [f"{shared_broker}?queue={queue}"]})
    async with running_orchestrator(settings) as api:
        definition = {"name": "unroutable", "steps": [step], "on_failure": "park"}
        assert (await api.post("/v1/definitions", json=definition)).status_code == 201
        saga_id = (
            await api.post("/v1/sagas", json={"definition": "unroutable", "input": {}})
        ).json()["id"]
        final = await wait_final(api, saga_id, timeout_s=30)
        assert final["status"] == "failed", final
        events = (await api.get(f"/v1/sagas/{saga_id}/events")).json()["items"]
        errors = [e["detail"]["error"] for e in events if e["kind"] == "call"]
        assert len(errors) == 2, errors
        assert all(f"no queue {queue!r}" in e for e in errors), errors
        assert all("guest:guest" not in json.dumps(e) for e in events)


def test_a_bad_broker_address_is_refused_without_its_password() -> None:
    with pytest.raises(ValueError, match="names no command queue") as refused:
        Settings(participants={"payments": ["amqp://svc:s3cr3t-pw@broker:5672/%2F"]})
    assert "s3cr3t-pw" not in str(refused.value)
    with pytest.raises(ValueError, match="mixes HTTP and AMQP"):
        Settings(participants={"p": ["http://a", "amqp://b/%2F?queue=p"]})
    shown = repr(Settings(participants={"p": ["amqp://svc:s3cr3t-pw@b/%2F?queue=p"]}))
    assert "s3cr3t-pw" not in shown


def test_serve_refuses_a_bad_broker_address_in_one_line_without_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from click.testing import CliRunner

    from orchestrator.cli import main

    monkeypatch.setenv("SAGA_PARTICIPANTS", '{"payments": "amqp://svc:s3cr3t-pw@broker/%2F"}')
    result = CliRunner().invoke(main, ["serve", "--port", "1"])
    assert result.exit_code == 1
    assert "SAGA_PARTICIPANTS: participant 'payments'" in result.output
    assert "names no command queue" in result.output
    assert "s3cr3t" not in result.output
    assert "Traceback" not in result.output
