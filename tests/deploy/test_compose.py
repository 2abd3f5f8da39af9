"""docker-compose.yml names real entry points, ports and settings, and each service starts.

There is no container engine here, so the compose file is checked two ways:
statically (commands, ports, environment, URLs and scrape targets agree with
the code) and by running every application service's exact command as a local
process, with only hosts, credentials, database names and host ports mapped to
this machine.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.settings import Settings
from participants.kit import ParticipantSettings
from participants.registry import SERVICES
from tests.support.databases import create_database, drop_database, pg_url, unique_name
from tests.support.servers import free_port, wait_http

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
APP_SERVICES = {
    name: spec
    for name, spec in COMPOSE["services"].items()
    if spec.get("image", "").startswith("saga-orchestrator")
}
LONG_RUNNING = {n: s for n, s in APP_SERVICES.items() if s.get("restart") != "no"}
DB_URL = re.compile(r"postgresql://saga:saga@postgres:5432/(\w+)")


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def container_port(spec: dict[str, Any]) -> int:
    [mapping] = spec["ports"]
    return int(mapping.split(":")[1])


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
    participants = json.loads(LONG_RUNNING["orchestrator-1"]["environment"]["SAGA_PARTICIPANTS"])
    assert set(participants) == set(SERVICES)
    for participant, url in participants.items():
        host, port = url.removeprefix("http://").split(":")
        assert host == participant
        assert int(port) == container_port(COMPOSE["services"][host])
        assert SERVICES[participant].port == int(port), "compose uses the default ports"


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
    env: dict[str, str], databases: dict[str, str], ports: dict[str, int]
) -> dict[str, str]:
    out = {}
    for key, value in env.items():
        value = DB_URL.sub(lambda m: databases[m.group(1)], value)
        for service, port in ports.items():
            value = value.replace(
                f"http://{service}:{container_port(COMPOSE['services'][service])}",
                f"http://127.0.0.1:{port}",
            )
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


@pytest.mark.e2e
@pytest.mark.postgres
def test_every_service_starts_with_its_compose_command(
    local_databases: dict[str, str], tmp_path: Path
) -> None:
    ports = {name: free_port() for name in LONG_RUNNING}
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGA_", "PARTICIPANT_"))}
    migrate = APP_SERVICES["migrate"]
    subprocess.run(
        argv(migrate["command"], None),
        cwd=tmp_path,
        check=True,
        timeout=120,
        env={**base_env, **localise(migrate["environment"], local_databases, ports)},
    )
    processes = []
    try:
        for name, spec in LONG_RUNNING.items():
            env = {**base_env, **localise(spec["environment"], local_databases, ports)}
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
        import httpx

        health = httpx.get(f"http://127.0.0.1:{ports['orchestrator-1']}/v1/participants").json()
        assert {p["name"]: p["health"] for p in health["items"]} == dict.fromkeys(SERVICES, "up")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=20)
