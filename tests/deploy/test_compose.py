"""docker-compose.yml names real entry points, ports and settings, and each service starts.

There is no container engine here, so the compose file is checked two ways:
statically (commands, ports, environment, URLs and scrape targets agree with
the code) and by running every application service's exact command as a local
process, with only hosts, database credentials and names, and host ports
mapped to this machine. A private RabbitMQ node stands in for the ``rabbitmq``
service, with the user and password the compose gives it and checked by the
compose's healthcheck command; the fleet then runs the mixed saga the compose
sets up (payments and inventory over the broker, orders and shipping over HTTP).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import aio_pika
import aiormq
import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.harness.rabbitmq import RabbitNode, private_node, rabbitmq_installed
from orchestrator.settings import Settings
from participants.kit import ParticipantSettings
from participants.kit.amqp import broker_url
from participants.order_saga import EXAMPLE_INPUT, ORDER_DEFINITION
from participants.registry import SERVICES
from tests.support.databases import create_database, drop_database, pg_url, unique_name
from tests.support.orchestrator import FINAL
from tests.support.servers import free_port, wait_http

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
APP_SERVICES = {
    name: spec
    for name, spec in COMPOSE["services"].items()
    if spec.get("image", "").startswith("saga-orchestrator")
}
LONG_RUNNING = {n: s for n, s in APP_SERVICES.items() if s.get("restart") != "no"}
ORCHESTRATORS = [n for n in LONG_RUNNING if n.startswith("orchestrator")]
DB_URL = re.compile(r"postgresql://saga:saga@postgres:5432/(\w+)")
RABBITMQ = COMPOSE["services"]["rabbitmq"]
#: RabbitMQ's AMQP port inside its container.
AMQP_PORT = 5672
#: The participants the compose's orchestrators reach over RabbitMQ; the others, over HTTP.
OVER_BROKER = {"payments", "inventory"}


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def container_port(spec: dict[str, Any]) -> int:
    [mapping] = spec["ports"]
    return int(mapping.split(":")[1])


def compose_participants() -> dict[str, str]:
    """The orchestrators' ``SAGA_PARTICIPANTS``: participant -> address."""
    participants: dict[str, str] = json.loads(
        LONG_RUNNING["orchestrator-1"]["environment"]["SAGA_PARTICIPANTS"]
    )
    return participants


def consumed_queue(service: str) -> str:
    """The command queue a compose service consumes (the kit's default: its name)."""
    queue: str = COMPOSE["services"][service]["environment"].get("PARTICIPANT_AMQP_QUEUE", service)
    return queue


def broker_login() -> tuple[str, str]:
    env = RABBITMQ["environment"]
    return env["RABBITMQ_DEFAULT_USER"], env["RABBITMQ_DEFAULT_PASS"]


def test_every_app_service_uses_a_real_entry_point() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for name, spec in APP_SERVICES.items():
        command = spec["command"]
        if command[0] == "saga":
            assert "saga" in scripts
        else:
            assert command[:2] == ["python", "-m"], name
            module = command[2]
            assert module.startswith("participants."), name
            assert module.split(".")[1] in SERVICES, name
            assert module.split(".")[1] == name, "service named after its participant"


def test_ports_agree_with_commands_and_participant_urls() -> None:
    for name, spec in LONG_RUNNING.items():
        assert int(option(spec["command"], "--port")) == container_port(spec), name
    participants = compose_participants()
    assert set(participants) == set(SERVICES)
    for participant, url in participants.items():
        if url.startswith("amqp://"):
            continue  # test_broker_participants_name_the_queues_their_services_consume
        host, port = url.removeprefix("http://").split(":")
        assert host == participant
        assert int(port) == container_port(COMPOSE["services"][host])
        assert SERVICES[participant].port == int(port), "compose uses the default ports"


def test_the_orchestrators_share_one_configuration() -> None:
    first, *others = (LONG_RUNNING[n]["environment"] for n in ORCHESTRATORS)
    assert len(ORCHESTRATORS) == 2
    assert all(env == first for env in others)
    assert APP_SERVICES["migrate"]["environment"] == first


def test_rabbitmq_service_is_what_the_services_expect() -> None:
    assert RABBITMQ["image"] in ("rabbitmq:3.13-management", "rabbitmq:3.13")
    assert RABBITMQ["healthcheck"]["test"] == ["CMD", "rabbitmq-diagnostics", "-q", "ping"]
    assert f"{AMQP_PORT}:{AMQP_PORT}" in RABBITMQ["ports"]
    [data] = [v for v in RABBITMQ["volumes"] if v.endswith(":/var/lib/rabbitmq")]
    assert data.split(":")[0] in COMPOSE["volumes"], "the broker's data is in a named volume"
    # The node is named after the host: a random container hostname would leave
    # the volume's data behind at the first re-creation.
    assert RABBITMQ["hostname"] == "rabbitmq"
    user, password = broker_login()
    assert (user, password) == ("saga", "saga")
    for name in SERVICES:
        spec = COMPOSE["services"][name]
        url = urlsplit(spec["environment"]["PARTICIPANT_AMQP_URL"])
        assert (url.scheme, url.hostname, url.port) == ("amqp", "rabbitmq", AMQP_PORT), name
        assert (url.username, url.password) == (user, password), name
        assert unquote(url.path[1:]) == "/", f"{name}: the default virtual host"
        assert spec["depends_on"]["rabbitmq"] == {"condition": "service_healthy"}, name
        assert spec["depends_on"]["postgres"] == {"condition": "service_healthy"}, name
    for name in ORCHESTRATORS:
        assert LONG_RUNNING[name]["depends_on"]["rabbitmq"] == {"condition": "service_healthy"}


def test_broker_participants_name_the_queues_their_services_consume() -> None:
    participants = compose_participants()
    over_broker = {n for n, url in participants.items() if url.startswith("amqp://")}
    assert over_broker == OVER_BROKER
    assert set(participants) - over_broker, "a mixed saga: some participants over HTTP"
    for name in over_broker:
        url = participants[name]
        assert parse_qs(urlsplit(url).query) == {"queue": [consumed_queue(name)]}, name
        service_broker = COMPOSE["services"][name]["environment"]["PARTICIPANT_AMQP_URL"]
        assert broker_url(url) == broker_url(service_broker), name
    routed = Settings(participants=participants).participants
    assert {n: urls[0] for n, urls in routed.items()} == participants


def test_environment_names_real_settings() -> None:
    saga_fields = {f"SAGA_{f.upper()}" for f in Settings.model_fields}
    participant_fields = {f"PARTICIPANT_{f.upper()}" for f in ParticipantSettings.model_fields}
    for name, spec in APP_SERVICES.items():
        for key in spec["environment"]:
            assert key in saga_fields | participant_fields, f"{name}: unknown setting {key}"


def test_each_service_has_its_own_database() -> None:
    databases = [
        DB_URL.search(s["environment"].get("PARTICIPANT_DATABASE_URL", ""))
        for s in LONG_RUNNING.values()
        if "PARTICIPANT_DATABASE_URL" in s["environment"]
    ]
    names = [m.group(1) for m in databases if m]
    assert len(names) == len(set(names)) == len(SERVICES)
    init = (ROOT / "deploy/postgres/init.sql").read_text()
    for db in names:
        assert f"CREATE DATABASE {db};" in init
    orchestrator_db = DB_URL.search(
        LONG_RUNNING["orchestrator-1"]["environment"]["SAGA_DATABASE_URL"]
    )
    assert orchestrator_db
    assert orchestrator_db.group(1) == COMPOSE["services"]["postgres"]["environment"]["POSTGRES_DB"]


def test_prometheus_scrapes_every_app_service() -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {
        t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    }
    expected = {f"{name}:{container_port(spec)}" for name, spec in LONG_RUNNING.items()}
    assert targets == expected


def test_prometheus_gets_its_rule_files_beside_its_config() -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    mounts = COMPOSE["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts
    assert config["rule_files"]
    for rule_file in config["rule_files"]:  # relative to the configuration file
        assert (ROOT / "deploy/prometheus" / rule_file).is_file()
        assert f"./deploy/prometheus/{rule_file}:/etc/prometheus/{rule_file}:ro" in mounts


@pytest.fixture
def local_databases() -> Iterator[dict[str, str]]:
    """compose database name -> a throwaway local database URL."""
    names = ["orchestrator", *SERVICES]
    mapping = {n: unique_name(f"compose_{n}") for n in names}
    for db in mapping.values():
        create_database(db)
    try:
        yield {n: pg_url(db, "asyncpg").replace("+asyncpg", "") for n, db in mapping.items()}
    finally:
        for db in mapping.values():
            drop_database(db)


def localise(
    env: dict[str, str], databases: dict[str, str], ports: dict[str, int], broker_port: int
) -> dict[str, str]:
    out = {}
    for key, value in env.items():
        value = DB_URL.sub(lambda m: databases[m.group(1)], value)
        for service, port in ports.items():
            value = value.replace(
                f"http://{service}:{container_port(COMPOSE['services'][service])}",
                f"http://127.0.0.1:{port}",
            )
        # Only host and port: the node has the compose's user and password.
        value = value.replace(f"@rabbitmq:{AMQP_PORT}/", f"@127.0.0.1:{broker_port}/")
        out[key] = value
    return out


def argv(command: list[str], port: int | None) -> list[str]:
    args = list(command)
    if args[0] == "saga":
        args[0] = str(Path(sys.executable).with_name("saga"))
    elif args[0] == "python":
        args[0] = sys.executable
    if port is not None:
        args[args.index("--port") + 1] = str(port)
        args[args.index("--host") + 1] = "127.0.0.1"
    return args


@pytest.fixture
def compose_broker() -> Iterator[RabbitNode]:
    """A private RabbitMQ node standing in for the compose's ``rabbitmq``, healthy by its check."""
    if not rabbitmq_installed():
        pytest.skip("the RabbitMQ server is not installed")
    user, password = broker_login()
    with private_node(config={"default_user": user, "default_pass": password}) as node:
        check = RABBITMQ["healthcheck"]["test"]
        assert check[0] == "CMD"
        node.cli(check[1], *check[2:], timeout_s=30)  # raises unless the check passes
        yield node


async def consumers(url: str, queues: Iterable[str]) -> dict[str, int]:
    """Each queue's consumer count on the broker at ``url`` (0: not declared yet)."""
    counts = {}
    connection = await aio_pika.connect(url, timeout=5)
    async with connection:
        for queue in queues:
            # A passive declare of a missing queue closes its channel: one channel each.
            channel = await connection.channel()
            try:
                declared = await channel.declare_queue(queue, passive=True)
                counts[queue] = declared.declaration_result.consumer_count or 0
            except aiormq.exceptions.ChannelNotFoundEntity:
                counts[queue] = 0
            finally:
                if not channel.is_closed:
                    await channel.close()
    return counts


def await_consumers(url: str, queues: list[str], timeout_s: float = 30) -> dict[str, int]:
    """Until every queue has a consumer; the counts then (or at the deadline)."""
    deadline = time.monotonic() + timeout_s
    while True:
        counts = asyncio.run(consumers(url, queues))
        if all(counts.values()) or time.monotonic() >= deadline:
            return counts
        time.sleep(0.2)


def metric(base_url: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` with ``labels`` that a process exports."""
    text = httpx.get(f"{base_url}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def run_order_saga(api: httpx.Client, timeout_s: float = 30) -> dict[str, Any]:
    """Start one order saga through ``api``; the saga once final."""
    started = api.post("/v1/sagas", json={"definition": "order", "input": EXAMPLE_INPUT})
    assert started.status_code == 201, started.text
    deadline = time.monotonic() + timeout_s
    while True:
        saga: dict[str, Any] = api.get(f"/v1/sagas/{started.json()['id']}").json()
        if saga["status"] in FINAL or time.monotonic() >= deadline:
            return saga
        time.sleep(0.1)


@pytest.mark.e2e
@pytest.mark.postgres
def test_every_service_starts_with_its_compose_command(
    local_databases: dict[str, str], compose_broker: RabbitNode, tmp_path: Path
) -> None:
    ports = {name: free_port() for name in LONG_RUNNING}
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGA_", "PARTICIPANT_"))}
    migrate = APP_SERVICES["migrate"]
    subprocess.run(
        argv(migrate["command"], None),
        cwd=tmp_path,
        check=True,
        timeout=120,
        env={
            **base_env,
            **localise(migrate["environment"], local_databases, ports, compose_broker.port),
        },
    )
    processes = []
    try:
        for name, spec in LONG_RUNNING.items():
            env = {
                **base_env,
                **localise(spec["environment"], local_databases, ports, compose_broker.port),
            }
            with (tmp_path / f"{name}.log").open("wb") as log:
                processes.append(
                    subprocess.Popen(
                        argv(spec["command"], ports[name]),
                        cwd=tmp_path,
                        env=env,
                        stdout=log,
                        stderr=log,
                    )
                )
        for name in LONG_RUNNING:
            path = "/readyz" if name.startswith("orchestrator") else "/healthz"
            wait_http(f"http://127.0.0.1:{ports[name]}{path}", timeout_s=60)
        # Every service, whichever transport the orchestrators use, consumes its queue.
        queues = [consumed_queue(name) for name in SERVICES]
        counts = await_consumers(compose_broker.url(), queues)
        assert all(count >= 1 for count in counts.values()), counts

        with httpx.Client(base_url=f"http://127.0.0.1:{ports['orchestrator-1']}") as api:
            health = api.get("/v1/participants").json()["items"]
            assert {p["name"]: p["health"] for p in health} == dict.fromkeys(SERVICES, "up")
            over_broker = {p["name"] for p in health if p.get("transport") == "amqp"}
            assert over_broker == OVER_BROKER
            assert ":".join(broker_login()) + "@" not in json.dumps(health), "password shown"

            assert api.post("/v1/definitions", json=ORDER_DEFINITION).status_code == 201
            saga = run_order_saga(api)
            assert saga["status"] == "completed", saga

        # Which transport each step took: the orchestrators count what they published,
        # the services what they answered from their queues.
        for name in SERVICES:
            published = sum(
                metric(
                    f"http://127.0.0.1:{ports[o]}", "saga_broker_published_total", participant=name
                )
                for o in ORCHESTRATORS
            )
            answered = metric(
                f"http://127.0.0.1:{ports[name]}",
                "participant_commands_total",
                queue=consumed_queue(name),
            )
            if name in OVER_BROKER:
                assert min(published, answered) >= 1, (name, published, answered)
            else:
                assert published == answered == 0, (name, published, answered)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=20)
