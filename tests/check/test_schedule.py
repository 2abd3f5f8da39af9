"""The seeded schedule: same seed, same schedule; rules that sum to the requested rate."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from orchestrator.check.config import DEFINITIONS, CampaignConfig, definition
from orchestrator.check.evidence import DefinitionInfo
from orchestrator.check.schedule import (
    CANCEL_AFTER_S,
    SERVICE_MODES,
    TRANSPORT_MODES,
    Plan,
    build_schedule,
    rule_probability,
)

DEFS = {name: DefinitionInfo.from_json(definition(name)) for name in DEFINITIONS}
PLAN = Plan(seed=7, sagas=200, definitions=DEFS, fault_rate=0.25, kills=5, zombies=1, db_crashes=1)


def test_the_same_seed_gives_the_same_schedule() -> None:
    first, second = build_schedule(PLAN), build_schedule(PLAN)
    assert first == second
    assert first.fingerprint() == second.fingerprint()
    assert first.as_json() == second.as_json()


@pytest.mark.parametrize(
    "change",
    [{"seed": 8}, {"sagas": 201}, {"fault_rate": 0.2}, {"kills": 4}, {"db_crashes": 0}],
)
def test_another_seed_or_option_gives_another_schedule(change: dict[str, object]) -> None:
    assert (
        build_schedule(replace(PLAN, **change)).fingerprint() != build_schedule(PLAN).fingerprint()
    )  # type: ignore[arg-type]


def test_rules_share_the_fault_rate() -> None:
    p = rule_probability(0.25, len(TRANSPORT_MODES) + len(SERVICE_MODES))
    assert 1 - (1 - p) ** 9 == pytest.approx(0.25, abs=1e-5)
    assert rule_probability(0.0, 9) == 0.0
    assert rule_probability(0.3, 0) == 0.0


def test_a_call_meets_a_fault_at_about_the_requested_rate() -> None:
    schedule = build_schedule(PLAN)
    transport = [r for r in schedule.rules if r.layer == "transport"]
    service = [
        r
        for r in schedule.rules
        if r.participant == "payments" and r.endpoint in (None, "/charges")
    ]
    rules = transport + service
    assert len(rules) == 9  # every mode once, as the charge meets them
    draw = random.Random(1)
    hits = sum(any(draw.random() < r.probability for r in rules) for _ in range(20_000))
    assert hits / 20_000 == pytest.approx(0.25, abs=0.015)


def test_every_requested_mode_has_a_rule_everywhere() -> None:
    schedule = build_schedule(PLAN)
    assert {r.mode for r in schedule.rules if r.layer == "transport"} == set(TRANSPORT_MODES)
    steps = [s for d in DEFS.values() for s in d.steps]
    for participant in {s.participant for s in steps}:
        modes = {r.mode for r in schedule.rules if r.participant == participant}
        # Only endpoints a saga may be refused at in every definition get refusals
        # (shipping's /shipments is retriable in order, compensatable in order_async).
        mine = [s for s in steps if s.participant == participant]
        spared = {s.action_path for s in mine if s.kind == "retriable"}
        refusable = bool({s.action_path for s in mine} - spared)
        expected = set(SERVICE_MODES) if refusable else set(SERVICE_MODES) - {"reject"}
        assert modes == expected, participant


def test_a_step_booked_before_the_pivot_in_its_only_definition_may_be_refused() -> None:
    only_async = {"order_async": DEFS["order_async"]}
    rules = build_schedule(replace(PLAN, definitions=only_async)).rules
    assert any(
        r.mode == "reject" and (r.participant, r.endpoint) == ("shipping", "/shipments")
        for r in rules
    )


def test_refusals_only_hit_actions_before_the_pivot_or_the_pivot() -> None:
    retriable = {
        (s.participant, s.action_path)
        for d in DEFS.values()
        for s in d.steps
        if s.kind == "retriable"
    }
    rejects = [r for r in build_schedule(PLAN).rules if r.mode == "reject"]
    assert rejects
    for rule in rejects:
        assert rule.phase == "action"
        assert (rule.participant, rule.endpoint) not in retriable
    assert ("payments", "/charges") in {(r.participant, r.endpoint) for r in rejects}


def test_rule_bodies_are_what_the_endpoints_take() -> None:
    bodies = {(r.layer, r.mode): r.body() for r in build_schedule(PLAN).rules}
    assert bodies[("transport", "error")]["status"] == 503
    assert bodies[("transport", "delay")]["delay_ms"] == 300
    assert "endpoint" not in bodies[("transport", "timeout")]
    assert bodies[("service", "reject")]["phase"] == "action"
    assert all(isinstance(b["seed"], int) for b in bodies.values())


def test_chaos_is_spread_over_the_load_and_ordered() -> None:
    chaos = build_schedule(PLAN).chaos
    kinds = [e.kind for e in chaos]
    assert sorted(kinds) == sorted(["kill"] * 5 + ["zombie", "db_crash"])
    assert [e.at for e in chaos] == sorted(e.at for e in chaos)
    assert all(0 < e.at < 1 for e in chaos)
    kills = [e for e in chaos if e.kind == "kill"]
    assert sum(e.aim for e in kills) == 3  # every other kill waits for a call in flight
    (zombie,) = [e for e in chaos if e.kind == "zombie"]
    assert zombie.hold_s > 2 * PLAN.lease_s
    assert zombie.aim


def test_the_world_is_a_little_short_of_the_demand() -> None:
    schedule = build_schedule(PLAN)
    wanted = sum(s.input["amount"] for s in schedule.sagas)
    assert 0.7 * wanted < sum(schedule.world.balances.values()) < wanted
    assert {s.input["account"] for s in schedule.sagas} <= set(schedule.world.balances)
    assert {s.input["sku"] for s in schedule.sagas} <= set(schedule.world.stock)
    assert {s.definition for s in schedule.sagas} == set(DEFS)


def test_no_rules_without_faults() -> None:
    assert build_schedule(replace(PLAN, fault_rate=0.0)).rules == ()


def test_options_are_checked_before_anything_runs() -> None:
    assert CampaignConfig().problems() == []
    bad = CampaignConfig(
        sagas=0,
        workers=1,
        zombies=1,
        db_crashes=1,
        database_url="postgresql://x@y/z",
        definitions=("nope",),
        transport_modes=("explode",),
    )
    problems = " | ".join(bad.problems())
    for expected in ("--sagas", "--zombies needs", "--db-crash", "'nope'", "'explode'"):
        assert expected in problems


def test_cancels_are_a_seeded_few_that_leave_the_other_draws_alone() -> None:
    schedule = build_schedule(PLAN)
    assert len(schedule.cancels) == 10  # 5 % of 200
    assert schedule.cancels == build_schedule(PLAN).cancels
    assert build_schedule(replace(PLAN, seed=8)).cancels != schedule.cancels
    numbers = [c.number for c in schedule.cancels]
    assert numbers == sorted(set(numbers))
    assert all(0 <= n < PLAN.sagas for n in numbers)
    assert all(0 <= c.after_s <= CANCEL_AFTER_S for c in schedule.cancels)
    # Drawn apart: without cancels, the world, sagas, rules and chaos are the same.
    none = build_schedule(replace(PLAN, cancel_rate=0.0))
    assert none.cancels == ()
    assert (none.world, none.sagas, none.rules, none.chaos) == (
        schedule.world,
        schedule.sagas,
        schedule.rules,
        schedule.chaos,
    )
    assert none.fingerprint() != schedule.fingerprint()
    assert schedule.as_json()["cancels"][0].keys() == {"number", "after_s"}


def test_a_small_campaign_still_cancels_one_saga() -> None:
    assert len(build_schedule(replace(PLAN, sagas=3)).cancels) == 1
    assert CampaignConfig(cancel_rate=1.5).problems() == ["--cancel-rate must be in [0, 1]"]


def test_broker_chaos_leaves_the_rest_of_the_schedule_as_it_was() -> None:
    plain = build_schedule(PLAN)
    brokered = build_schedule(
        replace(
            PLAN, broker_crashes=1, consumer_kills=3, broker_participants=("inventory", "payments")
        )
    )
    assert brokered.sagas == plain.sagas
    assert brokered.rules == plain.rules
    kinds = [e.kind for e in brokered.chaos]
    assert kinds.count("broker_crash") == 1
    assert kinds.count("consumer_kill") == 3
    kills = [e for e in brokered.chaos if e.kind == "consumer_kill"]
    assert {e.cut for e in kills} <= {"participant:inventory", "participant:payments"}
    assert [e.aim for e in kills] == [True, False, True]  # every other one mid-command
    assert build_schedule(replace(PLAN, broker_crashes=0)).as_json() == plain.as_json()
