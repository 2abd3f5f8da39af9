"""The ``saga`` command line."""

from __future__ import annotations

import click

from orchestrator.cli import bench, check, client, retention, server, top


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """saga-orchestrator: durable sagas across microservices."""


for command in (
    *server.COMMANDS,
    *client.COMMANDS,
    top.top,
    *check.COMMANDS,
    retention.prune,
    *bench.COMMANDS,
):
    main.add_command(command)

__all__ = ["main"]
