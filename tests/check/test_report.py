"""The report fails a campaign that did not exercise what it was asked to (blind spots)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.check.report import blind_spots, render, write
from orchestrator.check.schedule import SERVICE_MODES, TRANSPORT_MODES


def good_report() -> dict[str, Any]:
    return {
        "verdict": "pass",
        "violations": 0,
        "blind_spots": [],
        "config": {
            "seed": 1,
            "sagas": 10,
            "concurrency": 2,
            "workers": 2,
            "fault_rate": 0.2,
            "definitions": ["order"],
            "transport_modes": list(TRANSPORT_MODES),
            "service_modes": list(SERVICE_MODES),
            "kills": 1,
            "zombies": 1,
            "db_crashes": 1,
        },
        "schedule": {"fingerprint": "ab" * 32},
        "timings_s": {"total": 12.5, "load": 8.0},
        "databases": {"where": "private cluster"},
        "sagas": {
            "by_status": {"completed": 8, "compensated": 2},
            "not_started": 0,
            "parked_then_repaired": 1,
            "start_replays": 0,
        },
        "client": {"retries": {"503": 4}},
        "calls": {
            "recorded_calls": 60,
            "distinct_calls": 50,
            "calls_retried": 8,
            "most_attempts": 3,
            "by_outcome": {"succeeded": 50, "rejected": 2, "transient": 8},
        },
        "wire": {"requests": 58, "keys_sent_more_than_once": 6},
        "faults": {
            "fired": {
                "transport": dict.fromkeys(TRANSPORT_MODES, 2),
                "service": dict.fromkeys(SERVICE_MODES, 1),
            },
            "recorded_in_history": dict.fromkeys(TRANSPORT_MODES, 2),
        },
        "chaos": {
            "kills": [{"calls_in_flight": 2, "sagas_held": 3}],
            "zombies": [
                {
                    "worker": "worker1",
                    "paused_s": 7.5,
                    "lease_s": 3.0,
                    "calls_in_flight": 1,
                    "stale_writes_rejected": 2,
                    "sagas_found_taken_over": 2,
                }
            ],
            "db_crashes": [
                {"down_s": 3.0, "progress": 0.5, "mode": "immediate", "client_retries": 4}
            ],
        },
        "orchestrator": {
            "takeovers": 5.0,
            "version_conflicts": 2.0,
            "leases_lost": 2.0,
            "database_errors": {"claim": 3.0},
        },
        "invariants": [
            {"name": "terminal", "checked": 10, "violations": []},
            {
                "name": "money_conserved",
                "checked": 4,
                "violations": [
                    {"saga_id": "s1", "message": f"problem {n}", "invariant": "money_conserved"}
                    for n in range(7)
                ],
            },
        ],
    }


def test_a_campaign_that_did_everything_has_no_blind_spot() -> None:
    assert blind_spots(good_report()) == []


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("faults", "fired", "transport", "drop_response"), 0, "'drop_response' never fired"),
        (("faults", "fired", "service", "reject"), 0, "'reject' never fired"),
        (("chaos", "kills", 0, "calls_in_flight"), 0, "no worker kill landed"),
        (("chaos", "kills"), [], "0 of 1 worker kills"),
        (("chaos", "zombies", 0, "stale_writes_rejected"), 0, None),
        (("chaos", "db_crashes"), [], "0 of 1 database crashes happened"),
        (("orchestrator", "takeovers"), 0, "no saga was taken over"),
        (("sagas", "not_started"), 3, "3 sagas were never started"),
    ],
)
def test_each_thing_not_exercised_is_a_blind_spot(
    path: tuple[Any, ...], value: Any, expected: str | None
) -> None:
    report = copy.deepcopy(good_report())
    target = report
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    found = " | ".join(blind_spots(report))
    if expected is None:
        assert found == ""  # rejected writes alone, or takeovers alone, prove fencing
    else:
        assert expected in found


def test_a_zombie_without_any_late_write_is_a_blind_spot() -> None:
    report = good_report()
    report["chaos"]["zombies"][0].update(stale_writes_rejected=0, sagas_found_taken_over=0)
    assert any("fencing was not exercised" in s for s in blind_spots(report))


def test_an_unnoticed_database_crash_is_a_blind_spot() -> None:
    report = good_report()
    report["chaos"]["db_crashes"][0]["client_retries"] = 0
    report["orchestrator"]["database_errors"] = {}
    assert any("went unnoticed" in s for s in blind_spots(report))


def test_a_witness_that_missed_calls_is_a_blind_spot() -> None:
    report = good_report()
    report["wire"]["requests"] = 40  # of 52 answered calls: a witness stopped watching
    assert any("wire witnesses saw 40 requests" in s for s in blind_spots(report))


def test_broker_chaos_that_did_not_happen_is_a_blind_spot() -> None:
    report = good_report()
    report["config"].update(broker_crashes=1, consumer_kills=2)
    report["chaos"].update(
        broker_crashes=[], consumer_kills=[{"commands_unanswered": 0, "participant": "payments"}]
    )
    spots = blind_spots(report)
    assert "0 of 1 broker crashes happened" in spots
    assert "1 of 2 consumer kills happened" in spots
    assert "no consumer kill landed while a command was unanswered" in spots


def test_no_fault_mode_is_required_when_faults_are_off() -> None:
    report = good_report()
    report["config"]["fault_rate"] = 0.0
    report["faults"]["fired"] = {"transport": {}, "service": {}}
    assert blind_spots(report) == []


def test_the_summary_shows_figures_and_counterexamples(tmp_path: Path) -> None:
    report = good_report()
    report.update(
        verdict="fail", violations=7, blind_spots=["transport fault mode 'x' never fired"]
    )
    text = render(report, tmp_path / "r.json")
    assert "FAIL: 7 violations, 1 blind spots" in text
    assert "✗ money_conserved [s1]: problem 0" in text
    assert "and 2 more (see the JSON report)" in text
    assert "✗ blind: transport fault mode 'x' never fired" in text
    assert "zombie         worker1 paused 7.5s" in text
    assert "drop_response" in text
    write(report, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["violations"] == 7


def test_the_summary_names_the_history_and_its_anomalies(tmp_path: Path) -> None:
    report = good_report()
    assert "history" not in render(report)  # a report from before histories
    report["history"] = {
        "path": str(tmp_path / "history.jsonl"),
        "entries": 40,
        "operations": {"cancel": {"fail": 1, "ok": 2}, "start": {"ok": 10}},
        "anomalies_by_kind": {"lost_start": ["s1"]},
    }
    text = render(report)
    assert "history        40 entries (cancel fail 1/ok 2 · start ok 10)" in text
    assert "anomalies: lost_start x1" in text
    assert str(tmp_path / "history.jsonl") in text
