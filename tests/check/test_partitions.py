"""Partitions in a campaign: planned in turn, reported, and failing it when a call came late."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from orchestrator.check.config import CampaignConfig
from orchestrator.check.report import blind_spots, render
from orchestrator.check.schedule import build_schedule
from tests.check.test_report import good_report
from tests.check.test_schedule import PLAN


def db_partition(**figures: Any) -> dict[str, Any]:
    return {
        "at_s": 10.0,
        "healed_at_s": 17.5,
        "cut": "db:both",
        "worker": "worker2",
        "cut_s": 7.5,
        "lease_s": 3.0,
        "calls_in_flight": 3,
        "sagas_held": 5,
        "calls_withheld": 2,
        "zombie_calls": 0,
        "calls_on_wire_after_lease": 0,
        "database_errors": 4,
        "bytes_held": {"to_server": 100},
        "takeovers_by_others": 5,
        "stale_writes_rejected": 3,
        "sagas_found_taken_over": 3,
        **figures,
    }


def with_partitions(*cuts: dict[str, Any], asked: int | None = None) -> dict[str, Any]:
    report = good_report()
    report["config"]["partitions"] = len(cuts) if asked is None else asked
    report["chaos"]["partitions"] = list(cuts)
    return report


def test_partitions_cut_the_database_both_ways_then_one_way_then_a_participant() -> None:
    events = build_schedule(replace(PLAN, partitions=4)).chaos
    cuts = [e.cut for e in events if e.kind == "partition"]
    assert sorted(c.split(":")[0] for c in cuts if c) == ["db", "db", "db", "participant"]
    assert {"db:both", "db:to_client"} <= set(cuts)
    assert all(e.hold_s > PLAN.lease_s for e in events if e.kind == "partition")


def test_a_partition_that_held_its_calls_back_has_no_blind_spot() -> None:
    assert blind_spots(with_partitions(db_partition())) == []


def test_a_call_after_the_lease_fails_the_campaign() -> None:
    for late in ({"zombie_calls": 1}, {"calls_on_wire_after_lease": 2}):
        found = blind_spots(with_partitions(db_partition(**late)))
        assert any("calls after its lease ran out" in s for s in found)


def test_a_partition_missing_or_unnoticed_is_a_blind_spot() -> None:
    assert "0 of 1 partitions happened" in blind_spots(with_partitions(asked=1))
    found = blind_spots(with_partitions(db_partition(database_errors=0)))
    assert any("never noticed" in s for s in found)


def test_the_summary_shows_each_partition() -> None:
    service = {
        "cut": "participant:payments",
        "worker": None,
        "cut_s": 7.5,
        "lease_s": 3.0,
        "calls_in_flight": 4,
        "bytes_held": 900,
    }
    text = render(with_partitions(db_partition(), service))
    assert "partition      db:both for 7.5s (lease 3s) of worker2 holding 5 sagas" in text
    assert "zombie calls 0 (wire 0)" in text
    assert "partition      participant:payments for 7.5s" in text


def test_partitions_need_a_second_worker_to_take_over() -> None:
    problems = CampaignConfig(partitions=1, workers=1, zombies=0).problems()
    assert any("--partitions needs --workers 2" in p for p in problems)
    assert CampaignConfig(partitions=2).problems() == []
