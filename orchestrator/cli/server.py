"""Commands that run things: ``serve``, ``up``, ``db upgrade``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import uvicorn

from orchestrator import logs
from orchestrator.api.server import server_options
from orchestrator.otel import OtelNotInstalled
from orchestrator.settings import DEFAULT_HOME, Settings, SettingsError, load_settings
from orchestrator.store import migrate


def _configure_logging(level: str, fmt: str) -> None:
    logs.configure(level, fmt)


def settings_or_exit(**values: Any) -> Settings:
    """The settings, or a one-line error naming what is wrong (no traceback, no secret)."""
    try:
        return load_settings(**values)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--role",
    type=click.Choice(["all", "api", "worker"]),
    default="all",
    show_default=True,
    help="api: REST only; worker: drive sagas (with /healthz, /readyz, /metrics); all: both.",
)
@click.option("--no-migrate", is_flag=True, help="Do not run migrations at start.")
def serve(host: str, port: int, role: str, no_migrate: bool) -> None:
    """Run the orchestrator (configured by SAGA_* environment variables)."""
    from orchestrator.api.app import create_app

    settings = settings_or_exit()
    if settings.public_url is None:
        reachable = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        settings = settings.model_copy(update={"public_url": f"http://{reachable}:{port}"})
    _configure_logging(settings.log_level, settings.log_format)
    if not no_migrate:
        migrate.upgrade(settings.database_url)
    try:
        app = create_app(settings, role=role)
    except OtelNotInstalled as exc:
        raise click.ClickException(str(exc)) from None
    if role != "worker":
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        click.echo(f"saga serve: API http://{shown}:{port}/v1 · web UI http://{shown}:{port}/ui")
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=15,
        **server_options(settings),
    )


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option(
    "--participants/--no-participants",
    default=True,
    show_default=True,
    help="Also migrate the example services' databases (PARTICIPANT_* settings).",
)
def db_upgrade(participants: bool) -> None:
    """Run every migration to head: the orchestrator's and the example services'."""
    settings = settings_or_exit()
    migrate.upgrade(settings.database_url)
    click.echo(f"orchestrator: at {migrate.head_revision()}")
    if participants:
        from participants.kit.migrate import upgrade as upgrade_service
        from participants.registry import SERVICES

        for name in SERVICES:
            url = service_database_url(name)
            upgrade_service(name, url)
            click.echo(f"{name}: at head")


def service_database_url(name: str) -> str:
    """A service's database: ``SAGA_<NAME>_DATABASE_URL`` or its SQLite file in ./.saga."""
    import os

    return os.environ.get(f"SAGA_{name.upper()}_DATABASE_URL") or (
        f"sqlite+aiosqlite:///{DEFAULT_HOME}/{name}.db"
    )


class _Server(uvicorn.Server):
    """One of `saga up`'s servers: the signals are `saga up`'s, for all of them at once."""

    def install_signal_handlers(self) -> None:
        pass

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn would take SIGINT for this server alone and raise it again on its
        # way out, so one Ctrl-C reached the next server twice (a forced exit that
        # skips its shutdown). The loop's handler stops every server once.
        yield


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int, help="The orchestrator's port.")
@click.option(
    "--base-port",
    type=int,
    help="Services on BASE+1..BASE+4 instead of 9001..9004 "
    "(the orchestrator on BASE unless --port is given).",
)
def up(host: str, port: int, base_port: int | None) -> None:
    """Everything in one process for trying it: orchestrator, worker and example services.

    Embedded SQLite files in ./.saga/, faults enabled, the `order` definition
    registered, demo accounts and stock seeded. Ctrl-C stops it cleanly.
    """
    from participants.kit.migrate import upgrade as upgrade_service
    from participants.registry import SERVICES

    _configure_logging("INFO", "text")
    ports = {name: spec.port for name, spec in SERVICES.items()}
    if base_port is not None:
        ports = {name: base_port + 1 + i for i, name in enumerate(SERVICES)}
        source = click.get_current_context().get_parameter_source("port")
        if source is click.core.ParameterSource.DEFAULT:
            port = base_port
    urls = {name: f"http://{host}:{ports[name]}" for name in SERVICES}
    settings = settings_or_exit(
        participants={name: [url] for name, url in urls.items()},
        enable_faults=True,
        public_url=f"http://{host}:{port}",
    )
    migrate.upgrade(settings.database_url)
    for name in SERVICES:
        upgrade_service(name, service_database_url(name))
    busy = _ports_in_use(host, [port, *ports.values()])
    if busy:
        raise click.ClickException(
            f"port(s) {', '.join(map(str, busy))} on {host} are in use; "
            "stop what holds them or pick others with --base-port"
        )
    try:
        asyncio.run(_run_up(settings, host, port, ports))
    except OtelNotInstalled as exc:
        raise click.ClickException(str(exc)) from None


async def _run_up(settings: Settings, host: str, port: int, ports: dict[str, int]) -> None:
    from orchestrator.api.app import create_app
    from participants.order_saga import ORDER_DEFINITION
    from participants.registry import SERVICES

    servers: list[uvicorn.Server] = []
    for name, spec in SERVICES.items():
        service_settings = spec.settings(
            database_url=service_database_url(name), enable_faults=True
        )
        await spec.seed(service_database_url(name))
        app = spec.create_app(service_settings)
        config = uvicorn.Config(
            app, host=host, port=ports[name], log_level="warning", **server_options(settings)
        )
        servers.append(_Server(config))
    orchestrator_app = create_app(settings)
    servers.append(
        _Server(
            uvicorn.Config(
                orchestrator_app,
                host=host,
                port=port,
                log_level="warning",
                **server_options(settings),
            )
        )
    )

    def stop_all() -> None:
        for server in servers:
            server.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_all)
    tasks = [asyncio.create_task(_serve(s)) for s in servers]
    while not all(s.started for s in servers):
        if any(t.done() for t in tasks):
            for s in servers:
                s.should_exit = True
            await asyncio.gather(*tasks, return_exceptions=True)
            raise click.ClickException("a server could not start (is a port in use?)")
        await asyncio.sleep(0.05)
    operations = orchestrator_app.state.operations
    await operations.register(ORDER_DEFINITION)
    _print_banner(host, port, {name: f"http://{host}:{p}" for name, p in ports.items()})
    await asyncio.gather(*tasks)
    click.echo("stopped")


async def _serve(server: uvicorn.Server) -> None:
    # uvicorn calls sys.exit() when it cannot bind; in a shared loop that must
    # end this server, not the process with a traceback.
    try:
        await server.serve()
    except SystemExit:
        server.should_exit = True


def _ports_in_use(host: str, ports: list[int]) -> list[int]:
    busy = []
    for port in ports:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                busy.append(port)
    return busy


def _print_banner(host: str, port: int, urls: dict[str, str]) -> None:
    from participants.order_saga import EXAMPLE_INPUT

    # Outside an activated virtualenv `saga` is not on PATH: show what runs.
    saga = "saga" if shutil.which("saga") else str(Path(sys.argv[0]))
    url = "" if port == 8000 else f" --url http://{host}:{port}"
    lines = [
        "",
        f"  orchestrator  http://{host}:{port}   (API docs: http://{host}:{port}/docs)",
        f"  web UI        http://{host}:{port}/ui",
        *(f"  {name:<12}  {url}" for name, url in urls.items()),
        "",
        "  Try it:",
        f"    {saga} start order --input '{json.dumps(EXAMPLE_INPUT)}' --wait{url}",
        f"    {saga} list{url}",
        "",
        "  Ctrl-C stops everything.",
        "",
    ]
    click.echo("\n".join(lines))


COMMANDS: list[Any] = [serve, up, db]
