"""The benchmark's report as tables for the terminal."""

from __future__ import annotations

from typing import Any

from orchestrator.harness.tables import table


def _ratio_cell(report: dict[str, Any], row: dict[str, Any], versus: str) -> str | None:
    for r in report["ratios"]:
        if (r["mode"], r["in_flight"], r["versus"]) == (row["mode"], row["in_flight"], versus):
            value = r["sagas_per_s"]
            return None if value is None else f"{value:.2f}x"
    return None


def _ms(value: float | None) -> str | None:
    return None if value is None else f"{value:.2f}"


def render(report: dict[str, Any]) -> str:
    """Results, scaling, memory and targets; one table each."""
    run = report["run"]
    parts = [
        f"saga bench: {run['sagas']} sagas x {run['runs']} run(s), medians; "
        f"{run['steps_per_saga']} steps per saga"
    ]
    parts += [f"  {message}" for message in report["skipped"].values()]
    if run.get("broker"):
        broker = run["broker"]
        parts.append(f"  broker: {broker['url']}, queue {broker['queue']} (deleted at the end)")
    rows = [
        [
            r["mode"],
            r["in_flight"],
            f"{r['sagas_per_s']:.1f}",
            f"{r['p50_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            r["state_db_commits_per_saga"],
            r["participant_db_commits_per_saga"],
            f"{r['cpu_ms_per_saga']:.2f}",
            _ms(r.get("participant_cpu_ms_per_saga")),
            f"{r['completed']}/{r['sagas']}",
            _ratio_cell(report, r, "plain"),
            _ratio_cell(report, r, "dbos"),
            _ratio_cell(report, r, "orchestrator"),
        ]
        for r in report["results"]
    ]
    headers = [
        "mode",
        "in flight",
        "sagas/s",
        "p50 ms",
        "p99 ms",
        "state db commits/saga",
        "participant commits/saga",
        "cpu ms/saga",
        "participant cpu ms/saga",
        "completed",
        "vs plain",
        "vs dbos",
        "vs http",
    ]
    parts += ["", table(headers, rows)]
    if report["scaling"]:
        rows = [
            [
                s["workers"],
                f"{s['sagas_per_s']:.1f}",
                f"{s['p50_ms']:.1f}",
                f"{s['p99_ms']:.1f}",
                s["version_conflicts"],
                s["lease_takeovers"],
                ",".join(str(c) for c in s["claimed_per_worker"]),
                f"{s['completed']}/{s['sagas']}",
            ]
            for s in report["scaling"]
        ]
        headers = [
            "workers",
            "sagas/s",
            "p50 ms",
            "p99 ms",
            "conflicts",
            "takeovers",
            "claimed per worker",
            "completed",
        ]
        parts += ["", table(headers, rows)]
    memory = report["memory"]
    if memory:
        first, second = memory["checkpoints"]
        parts += [
            "",
            f"memory: RSS {memory['rss_mib'][0]} MiB after {first} sagas, "
            f"{memory['rss_mib'][1]} MiB after {second} ({memory['growth']:+.1%})",
        ]
    if report["targets"]:
        rows = [[t["target"], t["value"], t["limit"], t["check"]] for t in report["targets"]]
        parts += ["", table(["target", "value", "limit", "check"], rows)]
    parts += ["", f"JSON: {run['json']}"]
    return "\n".join(parts)
