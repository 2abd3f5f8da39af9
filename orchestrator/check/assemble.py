"""The report document of a finished campaign: every figure, every violation, the verdict.

Sections, in order: ``verdict``/``violations``/``blind_spots``; ``run``
(id, command, paths); ``config``; ``schedule`` (seed, fingerprint, rules,
chaos events); ``databases``; ``timings_s`` per phase; ``sagas`` (by final
status, parked then repaired); ``client`` (requests the campaign had to
retry, by cause); ``calls`` (from the sagas' histories); ``wire`` (what the
relays saw); ``callbacks`` (completions the services owed, by status);
``faults`` (fired per layer and mode, and as recorded);
``chaos`` (each kill, zombie and crash with its figures); ``orchestrator``
(the workers' own counters); ``tracebacks_in_logs``; ``invariants``;
``trails`` (for each saga a violation names, everything seen of it);
``history`` (the client's recorded history: its file and the checker's verdict).
"""

from __future__ import annotations

import sys
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from orchestrator.check import figures
from orchestrator.check.chaos import CONFLICTS, LEASES_LOST, TAKEOVERS
from orchestrator.check.collect import Collected
from orchestrator.check.evidence import InvariantResult
from orchestrator.check.report import blind_spots
from orchestrator.check.trails import trails

if TYPE_CHECKING:
    from orchestrator.check.campaign import Campaign

WORKERS = "worker"
"""Name prefix of the worker processes in the metrics book."""


def assemble(
    campaign: Campaign, collected: Collected, results: list[InvariantResult]
) -> dict[str, Any]:
    """The report of ``campaign`` from its evidence and the invariants' results."""
    fleet, chaos, dbs = campaign.fleet, campaign.chaos, campaign.dbs
    assert fleet is not None
    assert chaos is not None
    assert dbs is not None
    book, tally = fleet.book, campaign.tally
    history = figures.history_figures(collected.histories)
    final = campaign.faults.final if campaign.faults is not None else None
    by_status = Counter(s.status for s in collected.evidence.sagas.values())
    data: dict[str, Any] = {
        "verdict": "pass",
        "violations": sum(len(r.violations) for r in results),
        "blind_spots": [],
        "run": {
            "id": campaign.run_id,
            "command": " ".join(sys.argv),
            "workdir": str(campaign.workdir),
            "report": str(campaign.report_path),
            "finished_at": datetime.now(UTC).isoformat(),
        },
        "config": campaign.config.as_json(),
        "schedule": campaign.schedule.as_json(),
        "databases": dbs.as_json(),
        "timings_s": campaign.timings,
        "sagas": {
            "total": tally.total,
            "started": tally.started,
            "not_started": tally.total - tally.started,
            "by_status": dict(sorted(by_status.items())),
            "parked_then_repaired": sum(campaign.repaired.values()),
            "repaired_to": dict(campaign.repaired),
            "start_replays": tally.start_replays,
        },
        "client": {"retries": dict(sorted(tally.retries.items()))},
        "calls": history,
        "wire": figures.wire_figures(collected.evidence.wire),
        "callbacks": figures.callback_figures(
            collected.evidence.completions, campaign.definitions.values()
        ),
        "faults": {
            "rules": len(campaign.schedule.rules),
            "rule_probability": max((r.probability for r in campaign.schedule.rules), default=0),
            "fired": (
                campaign.faults.fired_by_mode(final)
                if campaign.faults is not None and final is not None
                else {"transport": {}, "service": {}}
            ),
            "service_by_participant": figures.service_fired_by_participant(
                final.service if final is not None else {}
            ),
            "recorded_in_history": history["transport_faults_recorded"],
            "seen_by_workers": book.by_label("saga_faults_fired_total", "mode", WORKERS),
        },
        "chaos": chaos.log.as_json(),
        "orchestrator": {
            "note": "sums of the last scrape of every worker incarnation (lower bounds)",
            "takeovers": book.total(TAKEOVERS, WORKERS),
            "version_conflicts": book.total(CONFLICTS, WORKERS),
            "leases_lost": book.total(LEASES_LOST, WORKERS),
            "claimed": book.total("saga_claimed_total", WORKERS),
            "database_errors": book.by_label("saga_database_errors_total", "operation", WORKERS),
            "restarts_exited_at_start": fleet.early_exits,
        },
        "tracebacks_in_logs": {name: len(lines) for name, lines in fleet.problems().items()},
        "invariants": [r.as_json() for r in results],
        "trails": trails(collected.evidence, collected.histories, results),
        "history": {
            "path": str(campaign.history.path),
            **(campaign.history_verdict.as_json() if campaign.history_verdict else {}),
        },
    }
    data["blind_spots"] = blind_spots(data)
    if data["violations"] or data["blind_spots"]:
        data["verdict"] = "fail"
    return data
