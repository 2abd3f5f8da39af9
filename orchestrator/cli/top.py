"""``saga top``: live counts by status and throughput, read from ``/metrics``."""

from __future__ import annotations

import time

import click
import httpx
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.cli.client import url_option
from orchestrator.harness.tables import table

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    try:
        text = httpx.get(f"{url}/metrics", timeout=5).text
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach the orchestrator at {url}: {exc}") from None
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


def render(now: Samples, before: Samples | None, seconds: float) -> str:
    def rate(name: str, **labels: str) -> str:
        if before is None or seconds <= 0:
            return "-"
        return f"{(total(now, name, **labels) - total(before, name, **labels)) / seconds:.1f}/s"

    rows = [
        ("running", int(total(now, "saga_sagas", status="running")), rate("saga_started_total")),
        ("compensating", int(total(now, "saga_sagas", status="compensating")), "-"),
        (
            "failed (parked)",
            int(total(now, "saga_sagas", status="failed")),
            rate("saga_finished_total", status="failed"),
        ),
        (
            "completed",
            int(total(now, "saga_finished_total", status="completed")),
            rate("saga_finished_total", status="completed"),
        ),
        (
            "compensated",
            int(total(now, "saga_finished_total", status="compensated")),
            rate("saga_finished_total", status="compensated"),
        ),
    ]
    lines = [
        table(["status", "sagas", "rate"], rows),
        "",
        f"backlog: oldest due saga waiting {total(now, 'saga_oldest_due_seconds'):.1f}s · "
        f"held by this worker: {int(total(now, 'saga_worker_held'))} · "
        f"version conflicts: {int(total(now, 'saga_version_conflicts_total'))} · "
        f"takeovers: {int(total(now, 'saga_lease_takeovers_total'))}",
        "(completed/compensated count what this process finished since it started)",
    ]
    return "\n".join(lines)


@click.command()
@url_option
@click.option("--interval", default=1.0, show_default=True, help="Seconds between refreshes.")
@click.option("--once", is_flag=True, help="Print one snapshot and exit.")
def top(url: str, interval: float, once: bool) -> None:
    """Live counts of sagas by status, throughput, backlog (Ctrl-C to quit)."""
    before: Samples | None = None
    taken = time.monotonic()
    while True:
        now, at = scrape(url), time.monotonic()
        if once:
            click.echo(render(now, None, 0))
            return
        click.clear()
        click.echo(render(now, before, at - taken))
        before, taken = now, at
        try:
            time.sleep(interval)
        except KeyboardInterrupt:
            return
