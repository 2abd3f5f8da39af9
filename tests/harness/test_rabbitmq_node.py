"""A private RabbitMQ node: killed and started again it keeps what it confirmed.

Against a real node of its own (:class:`RabbitNode`), over loopback AMQP with
aio-pika: a persistent message confirmed to the publisher before the node is
SIGKILLed is still in its durable queue afterwards. Meanwhile the machine's
shared broker at 5672 keeps serving the connection opened before the crash.
No process of a node outlives ``destroy``, nor a start that failed.

Nodes live under /tmp, not pytest's ``tmp_path``: that is in a 0700 directory
of root's, out of reach of the ``rabbitmq`` user the node runs as.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import pytest
from pamqp.commands import Basic

from orchestrator.harness.rabbitmq import BrokerError, RabbitNode, rabbitmq_installed

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(
        not rabbitmq_installed(),
        reason="needs the RabbitMQ server (Debian package rabbitmq-server)",
    ),
]

SHARED_URL = "amqp://guest:guest@127.0.0.1:5672/"
QUEUE = "saga-test-durable"


def new_root() -> Path:
    return Path(tempfile.mkdtemp(prefix="saga-rabbit-test-"))


def pgrep(name: str) -> list[int]:
    """The pids whose command line mentions ``name`` (the node's VM carries its name)."""
    found = subprocess.run(["pgrep", "-f", name], capture_output=True, text=True, check=False)
    return [int(pid) for pid in found.stdout.split()]


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


@pytest.fixture(scope="module")
def node() -> Iterator[RabbitNode]:
    broker = RabbitNode(new_root())
    try:
        broker.start()
        yield broker
    finally:
        broker.destroy()


def test_url_names_the_vhost_escaped() -> None:
    broker = RabbitNode(Path("/nonexistent"), port=5999)
    assert broker.url() == "amqp://guest:guest@127.0.0.1:5999/%2F"
    assert broker.url("orders") == "amqp://guest:guest@127.0.0.1:5999/orders"
    assert broker.name == "saga-test-5999@localhost"
    assert broker.dist_port != broker.port


async def test_confirmed_persistent_message_survives_a_crash(node: RabbitNode) -> None:
    async with await aio_pika.connect(SHARED_URL, timeout=10) as shared:
        async with await aio_pika.connect(node.url(), timeout=10) as conn:
            channel = await conn.channel(publisher_confirms=True)
            await channel.declare_queue(QUEUE, durable=True)
            confirmation = await channel.default_exchange.publish(
                aio_pika.Message(b"kept", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=QUEUE,
            )
            assert isinstance(confirmation, Basic.Ack)

        await asyncio.to_thread(node.crash)
        assert not node.running()
        assert node.processes() == []
        assert pgrep(node.name) == []
        assert refused(node.port)
        assert node.root.exists()

        await asyncio.to_thread(node.start)
        async with await aio_pika.connect(node.url(), timeout=10) as conn:
            channel = await conn.channel()
            queue = await channel.declare_queue(QUEUE, durable=True, passive=True)
            message = await queue.get(timeout=10)
            assert message is not None
            assert message.body == b"kept"
            await message.ack()
            assert await queue.get(fail=False, timeout=5) is None

        # Opened before the crash, still open: the shared broker never went down.
        assert not shared.is_closed
        probe = await shared.channel()
        await probe.close()


async def test_crash_for_reports_the_outage(node: RabbitNode) -> None:
    down_at, up_at = await node.crash_for(0.5)
    assert up_at - down_at >= 0.5
    assert node.crashes[-1] == (down_at, up_at)
    assert node.running()
    async with await aio_pika.connect(node.url(), timeout=10) as conn:
        channel = await conn.channel()
        await channel.declare_queue(QUEUE, durable=True, passive=True)


def test_destroy_leaves_no_process() -> None:
    broker = RabbitNode(new_root())
    try:
        broker.start()
        assert pgrep(broker.name), "the node's VM should be found by its name"
        assert broker.processes()
    finally:
        broker.destroy()
    assert pgrep(broker.name) == []
    assert broker.processes() == []
    assert not broker.root.exists()


def test_start_that_times_out_leaves_no_process() -> None:
    broker = RabbitNode(new_root())
    try:
        with pytest.raises(BrokerError, match="not listening"):
            broker.start(timeout_s=0.5)
        assert broker.processes() == []
        assert pgrep(broker.name) == []
    finally:
        broker.destroy()


def test_start_on_a_taken_port_fails_before_spawning() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        broker = RabbitNode(new_root(), port=taken.getsockname()[1])
        try:
            with pytest.raises(BrokerError, match="taken"):
                broker.start()
            assert broker.processes() == []
        finally:
            broker.destroy()
