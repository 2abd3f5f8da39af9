"""The campaign's report: the verdict, the proof it was not blind, a terminal summary.

The report is one JSON document (every figure, every violation) written to a
file; :func:`render` turns it into the summary printed at the end. A campaign
fails when any invariant has a counterexample *or* when the campaign did not
exercise what it was asked to (:func:`blind_spots`): a requested fault mode
that never fired, a kill that cut off no call, a zombie whose late writes were
never attempted, a database crash nobody noticed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SHOWN_PER_INVARIANT = 5


def blind_spots(report: dict[str, Any]) -> list[str]:
    """What the campaign was asked to exercise and did not (each one fails it)."""
    found = [*_fault_spots(report), *_chaos_spots(report), *_callback_spots(report)]
    found += _partition_spots(report)
    found += _broker_spots(report)
    found += _witness_spots(report)
    if report["sagas"]["not_started"]:
        found.append(f"{report['sagas']['not_started']} sagas were never started (time limit)")
    return found


def _fault_spots(report: dict[str, Any]) -> list[str]:
    config, fired = report["config"], report["faults"]["fired"]
    if config["fault_rate"] <= 0:
        return []
    requested = [("transport", m) for m in config["transport_modes"]]
    requested += [("service", m) for m in config["service_modes"]]
    return [
        f"{layer} fault mode {mode!r} never fired"
        for layer, mode in requested
        if fired[layer].get(mode, 0) == 0
    ]


def _callback_spots(report: dict[str, Any]) -> list[str]:
    callbacks = report.get("callbacks") or {}
    if callbacks.get("callback_steps") and not callbacks["by_status"].get("delivered"):
        return ["callback steps ran but no completion was delivered"]
    return []


def _chaos_spots(report: dict[str, Any]) -> list[str]:
    config, chaos, orchestrator = report["config"], report["chaos"], report["orchestrator"]
    kills, zombies, crashes = chaos["kills"], chaos["zombies"], chaos["db_crashes"]
    found: list[str] = []
    if len(kills) < config["kills"]:
        found.append(f"{len(kills)} of {config['kills']} worker kills happened")
    if kills and not any(k["calls_in_flight"] for k in kills):
        found.append("no worker kill landed while a participant call was in flight")
    if len(zombies) < config["zombies"]:
        found.append(f"{len(zombies)} of {config['zombies']} zombie pauses happened")
    found += [
        f"zombie {z['worker']} made no late write: fencing was not exercised"
        for z in zombies
        if z["stale_writes_rejected"] == 0 and z["sagas_found_taken_over"] == 0
    ]
    if (kills or zombies) and orchestrator["takeovers"] == 0:
        found.append("workers were killed or paused but no saga was taken over")
    if len(crashes) < config["db_crashes"]:
        found.append(f"{len(crashes)} of {config['db_crashes']} database crashes happened")
    worker_errors = sum(orchestrator["database_errors"].values())
    found += [
        "the database crash went unnoticed by the API and the workers"
        for crash in crashes
        if crash.get("client_retries", 0) + worker_errors == 0
    ]
    return found


def _witness_spots(report: dict[str, Any]) -> list[str]:
    """The relays and the broker's firehose must have seen (nearly) every answered call.

    Not every one: a worker killed between the answer and its record, or commands
    published in the moment between a broker's restart and its tracing, are missed.
    """
    outcomes = report.get("calls", {}).get("by_outcome", {})
    answered = sum(outcomes.get(k, 0) for k in ("succeeded", "rejected", "accepted"))
    seen = report.get("wire", {}).get("requests", 0)
    if answered and seen < 0.9 * answered:
        return [f"the wire witnesses saw {seen} requests for {answered} answered calls"]
    return []


def _broker_spots(report: dict[str, Any]) -> list[str]:
    config, chaos = report["config"], report["chaos"]
    crashes, kills = chaos.get("broker_crashes", []), chaos.get("consumer_kills", [])
    found: list[str] = []
    if len(crashes) < config.get("broker_crashes", 0):
        found.append(f"{len(crashes)} of {config['broker_crashes']} broker crashes happened")
    if len(kills) < config.get("consumer_kills", 0):
        found.append(f"{len(kills)} of {config['consumer_kills']} consumer kills happened")
    if kills and not any(k["commands_unanswered"] for k in kills):
        found.append("no consumer kill landed while a command was unanswered")
    return found


def _partition_spots(report: dict[str, Any]) -> list[str]:
    asked = report["config"].get("partitions", 0)
    done = report["chaos"].get("partitions", [])
    found: list[str] = []
    if len(done) < asked:
        found.append(f"{len(done)} of {asked} partitions happened")
    for cut in done:
        if cut["worker"] is None:
            continue
        late = cut["zombie_calls"] + cut["calls_on_wire_after_lease"]
        if late:
            # Not a blind spot but a failure: a call made without a lease.
            found.append(
                f"{cut['worker']} cut from the database made {late} calls after its lease ran out"
            )
        if cut["database_errors"] == 0 and cut["sagas_held"]:
            found.append(f"{cut['worker']} cut from the database never noticed it")
    return found


def write(report: dict[str, Any], path: Path) -> None:
    """Write the report as JSON (creating its directory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=False, default=str) + "\n")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table; numbers right-aligned."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str], raw: Sequence[Any]) -> str:
        out = []
        for value, width, original in zip(values, widths, raw, strict=True):
            numeric = isinstance(original, int | float) and not isinstance(original, bool)
            out.append(value.rjust(width) if numeric else value.ljust(width))
        return "  ".join(out).rstrip()

    lines = [line([h.upper() for h in headers], headers)]
    lines += [line(c, r) for c, r in zip(cells, rows, strict=True)]
    return "\n".join(lines)


def _faults_table(report: dict[str, Any]) -> str:
    faults = report["faults"]
    recorded = faults["recorded_in_history"]
    rows: list[list[Any]] = []
    for mode in report["config"]["transport_modes"]:
        rows.append(
            ["transport", mode, faults["fired"]["transport"].get(mode, 0), recorded.get(mode, 0)]
        )
    for mode in report["config"]["service_modes"]:
        rows.append(["service", mode, faults["fired"]["service"].get(mode, 0), "-"])
    return table(["layer", "mode", "fired", "in history"], rows)


def _chaos_lines(report: dict[str, Any]) -> list[str]:
    chaos, orch = report["chaos"], report["orchestrator"]
    kills = chaos["kills"]
    lines = [
        f"worker kills   {len(kills)}/{report['config']['kills']}: "
        f"{sum(1 for k in kills if k['calls_in_flight'])} with calls in flight "
        f"({sum(k['calls_in_flight'] for k in kills)} calls cut off, "
        f"{sum(k['sagas_held'] for k in kills)} sagas held)"
    ]
    for zombie in chaos["zombies"]:
        lines.append(
            f"zombie         {zombie['worker']} paused {zombie['paused_s']:.1f}s "
            f"(lease {zombie['lease_s']:g}s) with {zombie['calls_in_flight']} calls in flight: "
            f"{zombie['stale_writes_rejected']} stale writes rejected, "
            f"{zombie['sagas_found_taken_over']} sagas found taken over"
        )
    for cut in chaos.get("partitions", []):
        lines.append(_partition_line(cut))
    for crash in chaos["db_crashes"]:
        lines.append(
            f"database crash down {crash['down_s']:.1f}s at {crash['progress']:.0%} started "
            f"({crash['mode']}); client retries {crash.get('client_retries', 0)}"
        )
    for crash in chaos.get("broker_crashes", []):
        lines.append(
            f"broker crash   down {crash['down_s']:.1f}s at {crash['progress']:.0%} started "
            f"({crash['mode']}) with {crash['commands_in_flight']} commands unanswered"
        )
    for kill in chaos.get("consumer_kills", []):
        lines.append(
            f"consumer kill  {kill['participant']} at {kill['progress']:.0%} started "
            f"({'aimed' if kill['aimed'] else 'unaimed'}) with {kill['commands_unanswered']} "
            f"commands unanswered, restarted after {kill['restart_after_s']:.1f}s"
        )
    retries = report["client"]["retries"]
    lines.append(
        f"client         {report['sagas']['start_replays']} starts answered by replay; retries: "
        + (", ".join(f"{k} x{v}" for k, v in sorted(retries.items())) or "none")
    )
    errors = ", ".join(f"{k} {v:g}" for k, v in sorted(orch["database_errors"].items())) or "none"
    lines.append(
        f"orchestrator   takeovers {orch['takeovers']:g} · version conflicts "
        f"{orch['version_conflicts']:g} · leases lost {orch['leases_lost']:g} · "
        f"database errors: {errors}"
    )
    return lines


def _partition_line(cut: dict[str, Any]) -> str:
    head = f"partition      {cut['cut']} for {cut['cut_s']:.1f}s (lease {cut['lease_s']:g}s)"
    if cut["worker"] is None:
        return (
            f"{head} with {cut['calls_in_flight']} calls in flight, {cut['bytes_held']} bytes held"
        )
    return (
        f"{head} of {cut['worker']} holding {cut['sagas_held']} sagas: "
        f"{cut['calls_withheld']} calls withheld, zombie calls {cut['zombie_calls']} "
        f"(wire {cut['calls_on_wire_after_lease']}), {cut['database_errors']} database errors, "
        f"{cut['takeovers_by_others']} taken over, {cut['stale_writes_rejected']} stale writes "
        f"rejected"
    )


def _callback_lines(report: dict[str, Any]) -> list[str]:
    callbacks = report.get("callbacks") or {}
    if not callbacks.get("callback_steps") and not callbacks.get("owed"):
        return []
    statuses = " · ".join(f"{k} {v}" for k, v in callbacks["by_status"].items()) or "none"
    refused = ", ".join(f"{k} x{v}" for k, v in callbacks["refused_by_status"].items())
    return [
        f"callbacks      {callbacks['owed']} completions owed: {statuses}"
        + (f" (refused: {refused})" if refused else "")
        + f"; {callbacks['sent_more_than_once']} sent more than once"
    ]


def _history_lines(report: dict[str, Any]) -> list[str]:
    history = report.get("history") or {}
    if "entries" not in history:
        return []
    ops = " · ".join(
        f"{f} " + "/".join(f"{t} {n}" for t, n in types.items())
        for f, types in history["operations"].items()
    )
    kinds = ", ".join(f"{k} x{len(v)}" for k, v in history["anomalies_by_kind"].items())
    return [
        f"history        {history['entries']} entries ({ops or 'no operations'}); "
        f"anomalies: {kinds or 'none'} · {history['path']}"
    ]


def render(report: dict[str, Any], report_path: Path | None = None) -> str:
    """The terminal summary of a report."""
    config, sagas, calls, wire = report["config"], report["sagas"], report["calls"], report["wire"]
    by_status = sagas["by_status"]
    out = [
        "",
        f"saga check · seed {config['seed']} · {config['sagas']} sagas · concurrency "
        f"{config['concurrency']} · {config['workers']} workers · faults "
        f"{config['fault_rate']:.0%} · definitions {', '.join(config['definitions'])}",
        f"schedule {report['schedule']['fingerprint'][:16]} · took "
        f"{report['timings_s']['total']:.1f}s (load {report['timings_s'].get('load', 0):.1f}s) · "
        f"data: {report['databases']['where']}",
        "",
        "sagas          "
        + " · ".join(f"{k} {v}" for k, v in sorted(by_status.items()))
        + f" · parked then repaired {sagas['parked_then_repaired']}",
        f"calls          {calls['recorded_calls']} recorded attempts of {calls['distinct_calls']} "
        f"calls, {calls['calls_retried']} retried (up to {calls['most_attempts']} attempts); "
        f"wire {wire['requests']} requests, {wire['keys_sent_more_than_once']} keys sent again",
        *_callback_lines(report),
        *_chaos_lines(report),
        *_history_lines(report),
        *(["", _faults_table(report)] if report["config"]["fault_rate"] > 0 else []),
        "",
        table(
            ["invariant", "checked", "violations"],
            [[i["name"], i["checked"], len(i["violations"])] for i in report["invariants"]],
        ),
    ]
    for invariant in report["invariants"]:
        for violation in invariant["violations"][:SHOWN_PER_INVARIANT]:
            where = f" [{violation['saga_id']}]" if violation["saga_id"] else ""
            out.append(f"  ✗ {invariant['name']}{where}: {violation['message']}")
        hidden = len(invariant["violations"]) - SHOWN_PER_INVARIANT
        if hidden > 0:
            out.append(f"  ✗ {invariant['name']}: … and {hidden} more (see the JSON report)")
    for spot in report["blind_spots"]:
        out.append(f"  ✗ blind: {spot}")
    out.append("")
    verdict = report["verdict"].upper()
    out.append(
        f"{verdict}: {report['violations']} violations, {len(report['blind_spots'])} blind spots"
        + (f" · report {report_path}" if report_path else "")
    )
    return "\n".join(out)
