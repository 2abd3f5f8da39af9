"""``saga check``: run a consistency campaign and print its verdict."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from orchestrator.check.config import DEFINITIONS
from orchestrator.check.schedule import SERVICE_MODES, TRANSPORT_MODES
from orchestrator.check.tiers import TIERS

#: Options whose campaign setting has another name.
_CONFIG_FIELD = {
    "transport_faults": "transport_modes",
    "service_faults": "service_modes",
    "db_crash": "db_crashes",
    "time_limit": "time_limit_s",
    "lease": "lease_s",
}


def _typed(ctx: click.Context) -> list[str]:
    """The options given on the command line (not left to their defaults)."""
    return [
        name
        for name in ctx.params
        if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
    ]


def _modes(
    known: tuple[str, ...],
) -> Callable[[click.Context, click.Parameter, str], tuple[str, ...]]:
    """A click callback reading ``a,b``, ``all`` or ``none`` into modes of ``known``."""

    def convert(_ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
        text = value.strip()
        if text == "all":
            return known
        if text == "none":
            return ()
        modes = tuple(m.strip() for m in text.split(",") if m.strip())
        unknown = [m for m in modes if m not in known]
        if unknown:
            raise click.BadParameter(
                f"unknown mode(s) {', '.join(unknown)}; known: {', '.join(known)}", param=param
            )
        return modes

    return convert


class CouldNotRun(click.ClickException):
    """The campaign stopped before it could give a verdict (exit status 2)."""

    exit_code = 2


@click.command()
@click.option(
    "--tier",
    type=click.Choice(sorted(TIERS)),
    help="A named preset (ci, campaign, soak: see the README); "
    "options given beside it override its values.",
)
@click.option("--sagas", default=300, show_default=True, help="Sagas to run.")
@click.option(
    "--concurrency", default=20, show_default=True, help="Sagas started and not yet at rest."
)
@click.option(
    "--fault-rate",
    default=0.2,
    show_default=True,
    help="Chance that a participant call meets a fault (the modes share it equally).",
)
@click.option(
    "--transport-faults",
    callback=_modes(TRANSPORT_MODES),
    default="all",
    show_default=True,
    help=f"Orchestrator-side modes, comma-separated, 'all' or 'none': "
    f"{', '.join(TRANSPORT_MODES)}.",
)
@click.option(
    "--service-faults",
    callback=_modes(SERVICE_MODES),
    default="all",
    show_default=True,
    help=f"In-service modes, comma-separated, 'all' or 'none': {', '.join(SERVICE_MODES)}.",
)
@click.option("--workers", default=2, show_default=True, help="Worker processes.")
@click.option(
    "--kills", default=2, show_default=True, help="Workers SIGKILLed at random moments (restarted)."
)
@click.option(
    "--zombies",
    default=1,
    show_default=True,
    help="Workers paused (SIGSTOP) past twice the lease, then resumed; needs 2+ workers.",
)
@click.option(
    "--partitions",
    default=0,
    show_default=True,
    help="Network partitions, each past twice the lease, in turn: a worker cut from the "
    "database both ways, a worker whose database answers vanish, every worker cut from "
    "one participant; needs 2+ workers.",
)
@click.option(
    "--db-crashes",
    default=0,
    show_default=True,
    help="Run a private PostgreSQL cluster and crash it (pg_ctl -m immediate) this many times.",
)
@click.option("--db-crash", is_flag=True, help="The same as --db-crashes 1.")
@click.option(
    "--transport",
    type=click.Choice(["http", "amqp", "mixed"]),
    default="http",
    show_default=True,
    help="How workers reach the services: HTTP, every service through a private RabbitMQ "
    "node (amqp), or payments and inventory through it and the rest over HTTP (mixed).",
)
@click.option(
    "--broker-crashes",
    type=int,
    default=None,
    help="SIGKILL the private broker node this many times (restarted) [1 with a broker].",
)
@click.option(
    "--consumer-kills",
    type=int,
    default=None,
    help="SIGKILL broker participants this many times, every other one mid-command "
    "(restarted) [2 with a broker].",
)
@click.option("--seed", default=1, show_default=True, help="Same seed, same schedule.")
@click.option(
    "--definition",
    "definitions",
    multiple=True,
    type=click.Choice(sorted(DEFINITIONS)),
    help="Definition(s) to run (repeatable). Default: all of them.",
)
@click.option(
    "--time-limit",
    default=900.0,
    show_default=True,
    help="Seconds for the whole campaign; sagas not started or not at rest by then are reported.",
)
@click.option("--lease", default=3.0, show_default=True, help="Workers' SAGA_LEASE_S, in seconds.")
@click.option(
    "--database-url",
    help="The orchestrator's database (services get throwaway ones beside it). "
    "Default: throwaway databases on the local PostgreSQL, else SQLite files.",
)
@click.option(
    "--workdir", type=click.Path(path_type=Path), help="Logs and report [.saga/check/<run>]."
)
@click.option(
    "--report", "report_path", type=click.Path(path_type=Path), help="The JSON report's path."
)
@click.option("--keep-databases", is_flag=True, help="Do not drop the throwaway databases.")
@click.option("--no-progress", is_flag=True, help="No live progress line.")
@click.option(
    "--cancel-rate",
    default=0.05,
    show_default=True,
    help="Fraction of the sagas cancelled shortly after their start (at least one if > 0).",
)
@click.option(
    "--show-config", is_flag=True, help="Print the options the campaign would run with, and stop."
)
@click.pass_context
def check(
    ctx: click.Context,
    tier: str | None,
    sagas: int,
    concurrency: int,
    fault_rate: float,
    transport_faults: tuple[str, ...],
    service_faults: tuple[str, ...],
    workers: int,
    kills: int,
    zombies: int,
    db_crashes: int,
    db_crash: bool,
    transport: str,
    broker_crashes: int | None,
    consumer_kills: int | None,
    partitions: int,
    seed: int,
    definitions: tuple[str, ...],
    time_limit: float,
    lease: float,
    database_url: str | None,
    workdir: Path | None,
    report_path: Path | None,
    keep_databases: bool,
    no_progress: bool,
    cancel_rate: float,
    show_config: bool,
) -> None:
    """Prove it: run sagas under faults, kills and crashes, then verify every invariant.

    Starts the example services, an API and --workers orchestrator workers as
    real processes, runs --sagas sagas while injecting faults at the
    orchestrator's transport and inside the services, killing and pausing
    workers (and crashing the database with --db-crashes), then checks from the
    services' own ledgers and data that every saga completed or compensated
    with each effect applied exactly once. Prints a summary and writes every
    figure and violation to a JSON report.

    --tier ci|campaign|soak runs a named preset (the README lists them); any
    option given beside it overrides that one value.

    Exit status: 0 pass; 1 a violation, or something requested that did not
    happen (a fault mode that never fired); 2 the campaign could not run.
    """
    from orchestrator.check import CampaignConfig, run_campaign
    from orchestrator.check.load import ApiRefused, CampaignTimeout
    from orchestrator.check.report import render
    from orchestrator.harness.postgres import ClusterError

    chosen: dict[str, Any] = {
        "sagas": sagas,
        "concurrency": concurrency,
        "fault_rate": fault_rate,
        "transport_modes": transport_faults,
        "service_modes": service_faults,
        "workers": workers,
        "kills": kills,
        "zombies": zombies,
        "db_crashes": max(db_crashes, 1) if db_crash else db_crashes,
        "seed": seed,
        "definitions": definitions or tuple(sorted(DEFINITIONS)),
        "time_limit_s": time_limit,
        "lease_s": lease,
        "cancel_rate": cancel_rate,
        "partitions": partitions,
        "transport": transport,
        # With a broker, it is crashed and its consumers killed unless told otherwise.
        "broker_crashes": (1 if transport != "http" else 0)
        if broker_crashes is None
        else broker_crashes,
        "consumer_kills": (2 if transport != "http" else 0)
        if consumer_kills is None
        else consumer_kills,
    }
    if tier is not None:
        # Only what the user typed overrides the tier; click's defaults do not.
        typed = {_CONFIG_FIELD.get(name, name) for name in _typed(ctx)}
        if "transport" in typed:  # a broker chosen brings its crashes and kills along
            typed |= {"broker_crashes", "consumer_kills"}
        chosen = {k: v for k, v in chosen.items() if k in typed}
    config = replace(
        TIERS[tier].config() if tier else CampaignConfig(),
        **chosen,
        database_url=database_url,
        workdir=workdir,
        report_path=report_path,
        keep_databases=keep_databases,
        progress=not no_progress,
    )
    problems = config.problems()
    if problems:
        raise click.UsageError("; ".join(problems))
    if show_config:
        click.echo(json.dumps({"tier": tier, **config.as_json()}, indent=2))
        return
    # The campaign reports its broker crashes itself; the broker client's own
    # reports of them would flood the terminal.
    logging.getLogger("aio_pika").setLevel(logging.CRITICAL)
    logging.getLogger("aiormq").setLevel(logging.CRITICAL)
    try:
        result = asyncio.run(run_campaign(config, sys.stderr))
    except (ClusterError, CampaignTimeout, ApiRefused, TimeoutError, RuntimeError, OSError) as exc:
        # No verdict without a finished campaign: say why, apart from a failed one.
        raise CouldNotRun(f"the campaign could not run: {exc}") from exc
    click.echo(render(result, Path(result["run"]["report"])))
    sys.exit(0 if result["verdict"] == "pass" else 1)


@click.command("check-history")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def check_history(path: Path, as_json: bool) -> None:
    """Re-check a campaign's recorded client history (its history.jsonl).

    Verifies, saga by saga, that the statuses observed follow the state
    machine, that no acknowledged start was lost, that acknowledged cancels
    ended compensated, that the sagas' histories are unbroken chains and that
    observed versions never went backwards (docs/check-history.md).

    Exit status: 0 clean; 1 anomalies found; 2 the file is not a history.
    """
    import json

    from orchestrator.check import history_check
    from orchestrator.check.history import read_history

    try:
        entries = read_history(path)
    except (OSError, ValueError) as exc:
        raise CouldNotRun(str(exc)) from exc
    verdict = history_check.check_history(entries)
    if as_json:
        click.echo(json.dumps(verdict.as_json(), indent=2))
    else:
        click.echo(history_check.render_verdict(verdict, path))
    sys.exit(0 if verdict.ok else 1)


COMMANDS = [check, check_history]
