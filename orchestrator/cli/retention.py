"""``saga prune``: delete sagas that finished long ago, straight from the database."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime, timedelta

import click

from orchestrator.cli.server import settings_or_exit
from orchestrator.clock import utcnow
from orchestrator.store import migrate, retention
from orchestrator.store.engine import create_engine
from orchestrator.store.errors import StoreUnavailable

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"(\d+)([smhdw])")


def parse_duration(value: str) -> timedelta:
    """``90d``, ``12h``, ``30m``, ``45s`` or ``2w`` as a timedelta; ``ValueError`` otherwise."""
    match = _DURATION.fullmatch(value.strip().lower())
    if match is None:
        raise ValueError(
            f"{value!r} is not a duration: a whole number and a unit, "
            "s, m, h, d or w (e.g. 30d, 12h, 30m)"
        )
    amount, unit = int(match.group(1)), match.group(2)
    if amount == 0:
        raise ValueError("must be longer than zero")
    try:
        return timedelta(**{_UNITS[unit]: amount})
    except OverflowError:
        raise ValueError(f"{value!r} is too long") from None


def _duration_option(_ctx: click.Context, _param: click.Parameter, value: str) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.option(
    "--older-than",
    "older_than",
    required=True,
    callback=_duration_option,
    metavar="DURATION",
    help="Delete sagas that finished longer ago than this (30d, 12h, 30m, ...).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, retention.MAX_BATCH_SIZE),
    default=retention.DEFAULT_BATCH_SIZE,
    show_default=True,
    help="Sagas deleted per transaction.",
)
@click.option(
    "--include-failed",
    is_flag=True,
    help="Also delete parked (failed) sagas that nobody touched for that long.",
)
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@click.option(
    "--database-url",
    help="The orchestrator's database. Default: SAGA_DATABASE_URL (as `saga serve`).",
)
def prune(
    older_than: timedelta,
    batch_size: int,
    include_failed: bool,
    dry_run: bool,
    database_url: str | None,
) -> None:
    """Delete completed and compensated sagas, with their history, that finished long ago.

    Runs against the database, in batches of --batch-size sagas per short
    transaction, skipping any saga a worker holds at that moment: safe while
    the orchestrator runs. Parked (failed) sagas wait for an operator and are
    kept unless --include-failed.
    """
    url = database_url or settings_or_exit().database_url
    try:
        cutoff = utcnow() - older_than
    except OverflowError:
        raise click.BadParameter("reaches before year 1", param_hint="'--older-than'") from None
    try:
        asyncio.run(_prune(url, cutoff, batch_size, include_failed, dry_run))
    except StoreUnavailable as exc:
        raise click.ClickException(f"cannot prune: {exc}") from None


async def _prune(
    url: str, cutoff: datetime, batch_size: int, include_failed: bool, dry_run: bool
) -> None:
    engine = create_engine(url, pool_size=1)
    try:
        revision, head = await migrate.current_revision(engine), migrate.head_revision()
        if revision != head:
            raise click.ClickException(
                f"the database is at revision {revision or 'none'}, not {head}: "
                "run `saga db upgrade` first"
            )
        before = cutoff.isoformat(timespec="seconds")
        if dry_run:
            found = await retention.count_prunable(engine, cutoff, include_failed=include_failed)
            click.echo(
                f"would delete {found.sagas} sagas and {found.events} events "
                f"finished before {before}"
            )
            return
        started = time.monotonic()
        done = await retention.prune(
            engine, cutoff, batch_size=batch_size, include_failed=include_failed
        )
        click.echo(
            f"deleted {done.sagas} sagas and {done.events} events finished before {before} "
            f"({done.batches} batches, {time.monotonic() - started:.1f} s)"
        )
    finally:
        await engine.dispose()
