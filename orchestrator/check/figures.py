"""Counting what happened during a campaign (pure): calls, faults fired, the wire.

Faults are counted twice on purpose. The rules' ``fired`` counters (the
orchestrator keeps them in its database, the services in their processes)
count every firing, including those of calls a killed worker never got to
record; the sagas' histories count the firings whose outcome was recorded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from orchestrator.check.evidence import CompletionRow, DefinitionInfo, WireCall


def history_figures(histories: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Calls, attempts, outcomes and recorded transport faults from the sagas' histories."""
    outcomes: Counter[str] = Counter()
    phases: Counter[str] = Counter()
    faults: Counter[str] = Counter()
    operator: Counter[str] = Counter()
    attempts: Counter[tuple[str, str, str]] = Counter()
    for saga_id, items in histories.items():
        for item in items:
            if item["kind"] == "operator":
                operator[str((item.get("detail") or {}).get("action"))] += 1
            if item["kind"] != "call":
                continue
            outcomes[str(item["outcome"])] += 1
            phases[str(item["phase"])] += 1
            attempts[(saga_id, str(item["step"]), str(item["phase"]))] += 1
            fault = (item.get("detail") or {}).get("fault")
            if fault:
                faults[str(fault)] += 1
    return {
        "recorded_calls": sum(outcomes.values()),
        "by_outcome": dict(sorted(outcomes.items())),
        "by_phase": dict(sorted(phases.items())),
        "distinct_calls": len(attempts),
        "calls_retried": sum(1 for n in attempts.values() if n > 1),
        "most_attempts": max(attempts.values(), default=0),
        "transport_faults_recorded": dict(sorted(faults.items())),
        "operator_actions": dict(sorted(operator.items())),
    }


def transport_fired(rules: Iterable[Mapping[str, Any]], ids: Iterable[int]) -> dict[str, int]:
    """Firings of the campaign's transport rules (``GET /v1/faults``), by mode."""
    wanted = set(ids)
    fired: Counter[str] = Counter()
    for rule in rules:
        if rule.get("id") in wanted:
            fired[str(rule["mode"])] += int(rule.get("fired", 0))
    return dict(sorted(fired.items()))


def service_fired(boards: Mapping[str, Iterable[Mapping[str, Any]]]) -> dict[str, int]:
    """Firings of the services' rules (``GET /_faults`` of each), by mode."""
    fired: Counter[str] = Counter()
    for rules in boards.values():
        fired.update(_sum_modes(rules))
    return dict(sorted(fired.items()))


def service_fired_by_participant(
    boards: Mapping[str, Iterable[Mapping[str, Any]]],
) -> dict[str, dict[str, int]]:
    """Firings of the services' rules, per service and mode."""
    return {name: dict(sorted(_sum_modes(rules).items())) for name, rules in sorted(boards.items())}


def _sum_modes(rules: Iterable[Mapping[str, Any]]) -> Counter[str]:
    sums: Counter[str] = Counter()
    for rule in rules:
        sums[str(rule["mode"])] += int(rule.get("fired", 0))
    return sums


def wire_figures(calls: Iterable[WireCall]) -> dict[str, Any]:
    """What the relays saw: requests, repeats of one key, unanswered and lost answers."""
    keys: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    unanswered = lost = 0
    by_worker: Counter[str] = Counter()
    commands = 0
    for call in calls:
        if call.method not in ("POST", "COMMAND"):
            continue
        by_worker[call.worker] += 1
        commands += call.method == "COMMAND"
        if call.key is not None:
            keys[call.key] += 1
        if call.status is None:
            unanswered += 1
        else:
            statuses[f"{call.status // 100}xx"] += 1
        lost += call.answer_lost
    return {
        "requests": sum(by_worker.values()),
        "broker_commands": commands,
        "by_worker": dict(sorted(by_worker.items())),
        "answers": dict(sorted(statuses.items())),
        "keys": len(keys),
        "keys_sent_more_than_once": sum(1 for n in keys.values() if n > 1),
        "most_sends_of_one_key": max(keys.values(), default=0),
        "never_answered": unanswered,
        "answers_lost_by_the_worker": lost,
    }


def callback_figures(
    completions: Mapping[str, Iterable[CompletionRow]], definitions: Iterable[DefinitionInfo]
) -> dict[str, Any]:
    """Completions the services owed for callback steps (``/_callbacks``), by status."""
    rows = [row for owed in completions.values() for row in owed]
    statuses = Counter(row.status for row in rows)
    refused = Counter(str(row.http_status) for row in rows if row.status == "refused")
    return {
        "callback_steps": sum(1 for d in definitions for step in d.steps if step.callback),
        "owed": len(rows),
        "by_status": dict(sorted(statuses.items())),
        "refused_by_status": dict(sorted(refused.items())),
        "sent_more_than_once": sum(1 for row in rows if row.tries > 1),
        "by_participant": dict(sorted(Counter(row.participant for row in rows).items())),
    }
