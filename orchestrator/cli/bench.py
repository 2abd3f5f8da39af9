"""``saga bench``: the orchestrator against the plain chain of calls and DBOS."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from orchestrator.bench.broker import DEFAULT_BROKER
from orchestrator.bench.modes import MODES


def _counts(_ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    """``1,2,4`` -> (1, 2, 4); empty -> ()."""
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError as exc:
        raise click.BadParameter("a comma-separated list of integers", param=param) from exc


def _modes(_ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    modes = tuple(m.strip() for m in value.split(",") if m.strip() and m.strip() != "none")
    if unknown := [m for m in modes if m not in MODES]:
        raise click.BadParameter(
            f"unknown mode(s) {', '.join(unknown)}; known: {', '.join(MODES)}", param=param
        )
    return modes


@click.command()
@click.option("--sagas", default=2000, show_default=True, help="Sagas per measurement.")
@click.option(
    "--in-flight",
    "in_flight",
    type=int,
    multiple=True,
    default=(1, 50),
    show_default=True,
    help="Sagas kept running at once (repeatable).",
)
@click.option(
    "--runs", default=3, show_default=True, help="Repeat each measurement; report the medians."
)
@click.option(
    "--modes",
    callback=_modes,
    default=",".join(MODES),
    show_default=True,
    help="Comma-separated, or 'none' (only --scaling/--memory). dbos needs the bench extra.",
)
@click.option(
    "--scaling",
    "--workers",
    "scaling",
    callback=_counts,
    default="",
    help="Worker counts to compare, e.g. 1,2,4: that many `saga serve --role worker` "
    "behind an API-only process, at the largest --in-flight.",
)
@click.option(
    "--memory", is_flag=True, help="RSS of one `saga serve` after each of --memory-sagas sagas."
)
@click.option(
    "--memory-sagas",
    callback=_counts,
    default="2000,20000",
    show_default=True,
    help="The two saga counts at which --memory reads the RSS.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path),
    help="Write the report here [<workdir>/bench.json].",
)
@click.option(
    "--database-url",
    help="The orchestrator's PostgreSQL database, used as given; the participant's and DBOS's "
    "are created beside it. Default: throwaway databases on the local PostgreSQL.",
)
@click.option(
    "--broker",
    "broker_url",
    default=DEFAULT_BROKER,
    show_default="the machine's RabbitMQ, guest/guest",
    help="The RabbitMQ node of the broker mode (amqp://user:pass@host:port/vhost). Only one "
    "queue of the run's own is declared there, and deleted at the end; no answer: the mode "
    "is skipped.",
)
@click.option(
    "--workdir", type=click.Path(path_type=Path), help="Process logs [.saga/bench/<run>]."
)
@click.option(
    "--poll-ms",
    default=5.0,
    show_default=True,
    help="How often the client looks for ended sagas in the orchestrator's database.",
)
def bench(
    sagas: int,
    in_flight: tuple[int, ...],
    runs: int,
    modes: tuple[str, ...],
    scaling: tuple[int, ...],
    memory: bool,
    memory_sagas: tuple[int, ...],
    json_path: Path | None,
    database_url: str | None,
    broker_url: str,
    workdir: Path | None,
    poll_ms: float,
) -> None:
    """Measure it: sagas/s, latency, commits and CPU against the plain chain and DBOS.

    Starts the benchmark participant and, each as its own process, `saga serve`
    (calling it over HTTP, and another over RabbitMQ for the broker mode) and
    (with the bench extra) a DBOS Transact service; runs the same
    three-step saga through each mode and as the plain chain of calls, at
    every --in-flight count, --runs times; prints the medians, the ratios and
    the targets met or missed, and writes every figure as JSON.
    """
    from orchestrator.bench import BenchConfig, run_bench
    from orchestrator.bench.report import render

    if memory and len(memory_sagas) != 2:
        raise click.UsageError("--memory-sagas takes two counts, e.g. 2000,20000")
    config = BenchConfig(
        sagas=sagas,
        in_flight=in_flight,
        runs=runs,
        modes=modes,
        scaling=scaling,
        memory=(memory_sagas[0], memory_sagas[1]) if memory else None,
        database_url=database_url,
        broker_url=broker_url,
        workdir=workdir,
        json_path=json_path,
        poll_s=poll_ms / 1000,
    )
    if problems := config.problems():
        raise click.UsageError("; ".join(problems))
    report = asyncio.run(run_bench(config, sys.stderr))
    click.echo(render(report))


COMMANDS = [bench]
