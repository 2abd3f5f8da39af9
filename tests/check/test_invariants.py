"""The checker is not blind: each kind of violation, planted by hand, is caught (no I/O)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from orchestrator.check.business import BusinessSnapshot, Item, Movement, Order
from orchestrator.check.config import definition
from orchestrator.check.evidence import (
    CompletionRow,
    DefinitionInfo,
    Evidence,
    InvariantResult,
    LedgerRow,
    SagaRecord,
    WireCall,
)
from orchestrator.check.invariants import check_callbacks, verify
from tests.check.builders import (
    ORDER,
    at,
    changed,
    clean_business,
    clean_rows,
    evidence,
    row,
    saga,
)

ASYNC = DefinitionInfo.from_json(definition("order_async"))


def failing(ev: Evidence) -> dict[str, InvariantResult]:
    return {r.name: r for r in verify(ev) if not r.ok}


def test_a_correct_campaign_passes_every_invariant() -> None:
    results = verify(evidence())
    assert [r.name for r in results] == [
        "terminal",
        "completed_exactly_once",
        "compensated_exactly_once",
        "compensation_order",
        "no_action_after_compensation",
        "same_idempotency_key",
        "callback_completed_once",
        "money_conserved",
        "stock_conserved",
        "orders_match_sagas",
    ]
    assert all(r.ok for r in results), [r.violations for r in results]
    checked = {r.name: r.checked for r in results}
    # Every saga and row was looked at (the checks are not vacuous).
    assert checked["terminal"] == 4
    assert checked["completed_exactly_once"] == 1
    assert checked["compensated_exactly_once"] == 3
    assert checked["compensation_order"] == 1
    assert checked["no_action_after_compensation"] == 4


def test_a_double_effect_in_the_ledger_is_caught() -> None:
    # The charge of the completed saga applied a second time under another key.
    twice = row("s-done", "charge", "action", "applied", 3.5)
    twice = replace(twice, key="s-done:charge:action:2")
    found = failing(evidence(rows=[*clean_rows(), twice]))
    assert set(found) == {"completed_exactly_once", "same_idempotency_key"}
    assert {v.saga_id for r in found.values() for v in r.violations} == {"s-done"}
    assert "applied', 'applied" in found["completed_exactly_once"].violations[0].message


def test_a_double_charge_in_the_business_data_is_caught() -> None:
    data = clean_business()
    doubled = replace(
        data,
        balances={"acct-000": 80},
        movements=(*data.movements, Movement("acct-000", "charge", -10, "s-done")),
    )
    found = failing(evidence(business=doubled))
    assert set(found) == {"money_conserved"}
    messages = [v.message for v in found["money_conserved"].violations]
    assert any("holds 80, expected 90" in m for m in messages)
    assert any("moved -20, expected -10" in m for m in messages)


def test_a_missing_compensation_is_caught() -> None:
    rows = changed(clean_rows(), "s-refused:reserve_stock:action", status="applied")
    rows = [r for r in rows if r.key != "s-refused:reserve_stock:compensation"]
    found = failing(evidence(rows=rows))
    assert set(found) == {"compensated_exactly_once"}
    (violation,) = found["compensated_exactly_once"].violations
    assert violation.saga_id == "s-refused"
    assert violation.participant == "inventory"
    assert "never compensated" in violation.message


def test_an_action_after_its_tombstone_is_caught() -> None:
    # The late action went through although its compensation left a tombstone.
    rows = changed(clean_rows(), "s-tomb:create_order:action", status="applied", applied_at=at(9))
    found = failing(evidence(rows=rows))
    assert "no_action_after_compensation" in found
    (violation,) = found["no_action_after_compensation"].violations
    assert violation.saga_id == "s-tomb"
    assert "after its compensation" in violation.message


def test_an_action_the_compensation_did_not_undo_is_caught() -> None:
    rows = changed(clean_rows(), "s-refused:create_order:action", status="applied")
    found = failing(evidence(rows=rows))
    assert "did not undo it" in found["no_action_after_compensation"].violations[0].message


def test_a_stuck_saga_is_caught() -> None:
    base = evidence()
    stuck = replace(base.sagas["s-done"], status="running")
    found = failing(replace(base, sagas={**base.sagas, "s-done": stuck}))
    assert "terminal" in found
    assert found["terminal"].violations[0].saga_id == "s-done"
    # ... and the business checks no longer accept its charge either.
    assert "money_conserved" in found


def test_money_created_is_caught() -> None:
    data = clean_business()
    richer = replace(
        data,
        balances={"acct-000": 95},
        movements=(*data.movements, Movement("acct-000", "refund", 5, None)),
    )
    found = failing(evidence(business=richer))
    assert set(found) == {"money_conserved"}
    assert "difference +5" in found["money_conserved"].violations[0].message


def test_a_balance_changed_behind_the_movements_is_caught() -> None:
    found = failing(evidence(business=replace(clean_business(), balances={"acct-000": 91})))
    messages = [v.message for v in found["money_conserved"].violations]
    assert any("movements sum to 90" in m for m in messages)


def test_stock_created_is_caught() -> None:
    more = replace(clean_business(), items=(Item("sku-00", 10, 1, 0),))
    found = failing(evidence(business=more))
    assert set(found) == {"stock_conserved"}
    assert "counts 11 units" in found["stock_conserved"].violations[0].message


def test_an_approved_order_of_a_compensated_saga_is_caught() -> None:
    data = clean_business()
    orders = tuple(
        replace(o, status="approved") if o.saga_id == "s-refused" else o for o in data.orders
    )
    found = failing(evidence(business=replace(data, orders=orders)))
    assert set(found) == {"orders_match_sagas"}
    assert found["orders_match_sagas"].violations[0].saga_id == "s-refused"


def test_a_second_order_for_one_saga_is_caught() -> None:
    data = clean_business()
    extra = Order("o-again", "s-done", "approved", "acct-000", "sku-00", 1, 10)
    found = failing(evidence(business=replace(data, orders=(*data.orders, extra))))
    assert "['approved', 'approved']" in found["orders_match_sagas"].violations[0].message


def test_compensations_out_of_order_are_caught() -> None:
    # create_order (stage 0) undone before reserve_stock (stage 1).
    rows = changed(clean_rows(), "s-refused:create_order:compensation", applied_at=at(3.5))
    found = failing(evidence(rows=rows))
    assert set(found) == {"compensation_order"}
    assert "create_order (stage 0)" in found["compensation_order"].violations[0].message


def test_members_of_one_parallel_group_may_be_compensated_in_any_order() -> None:
    definition = evidence().definitions["order_parallel"]
    create, reserve = definition.steps[0], definition.steps[1]
    assert create.stage == reserve.stage == 0


def test_a_compensation_of_a_completed_saga_is_caught() -> None:
    rows = [*clean_rows(), row("s-done", "create_shipment", "compensation", "applied", 6)]
    found = failing(evidence(rows=rows))
    assert "was compensated" in found["completed_exactly_once"].violations[0].message


def test_a_retry_with_another_key_on_the_wire_is_caught() -> None:
    wire = [
        WireCall(
            "worker1",
            "payments",
            "POST",
            "/charges",
            "s-done:charge:action",
            "s-done",
            "charge",
            1,
            503,
        ),
        WireCall(
            "worker2",
            "payments",
            "POST",
            "/charges",
            "s-done:charge:action:2",
            "s-done",
            "charge",
            2,
            201,
        ),
    ]
    found = failing(evidence(wire=wire))
    assert set(found) == {"same_idempotency_key"}
    assert "sent with keys" in found["same_idempotency_key"].violations[0].message


def test_an_effect_nobody_asked_for_is_caught() -> None:
    stray = row("s-ghost", "charge", "action", "applied", 1)
    found = failing(evidence(rows=[*clean_rows(), stray]))
    assert "never ran" in found["same_idempotency_key"].violations[0].message


def test_an_effect_at_the_wrong_participant_is_caught() -> None:
    wrong = replace(row("s-done", "charge", "action", "applied", 3), participant="shipping")
    rows = [r for r in clean_rows() if r.key != "s-done:charge:action"] + [wrong]
    found = failing(evidence(rows=rows))
    assert "does not call" in found["same_idempotency_key"].violations[0].message


@pytest.mark.parametrize("status", ["compensated", "rejected", "tombstone"])
def test_a_completed_saga_needs_every_action_applied(status: str) -> None:
    rows = changed(clean_rows(), "s-done:charge:action", status=status)
    found = failing(evidence(rows=rows))
    assert "completed_exactly_once" in found


def test_business_checks_are_skipped_without_business_data() -> None:
    base = evidence()
    results = verify(replace(base, business=None))
    assert "money_conserved" not in {r.name for r in results}
    assert all(r.ok for r in results)


def test_a_violation_names_its_saga_and_what_is_wrong() -> None:
    parked = saga("s-x", "failed", ORDER, create_order="compensation_failed")
    result = verify(replace(evidence(), sagas={"s-x": parked}, business=None))[0]
    assert not result.ok
    (violation,) = result.as_json()["violations"]
    assert violation["invariant"] == "terminal"
    assert violation["saga_id"] == "s-x"
    assert violation["message"].startswith("saga is failed after quiescence")
    assert "create_order compensation_failed" in violation["message"]


def test_an_empty_snapshot_is_not_a_pass_for_seeded_accounts() -> None:
    empty = BusinessSnapshot(opening_balances={"acct-000": 100}, initial_stock={}, balances={})
    found = failing(evidence(business=empty))
    assert "missing" in found["money_conserved"].violations[0].message


def _async_evidence(*completions: CompletionRow, shipped: str = "applied") -> Evidence:
    done = [
        replace(row("s-async", s.name, "action", "applied", n), participant=s.participant)
        for n, s in enumerate(ASYNC.steps)
    ]
    undone = [
        replace(row("s-undone", "create_shipment", "action", shipped, 1), participant="shipping"),
        replace(
            row("s-undone", "create_shipment", "compensation", "applied", 2),
            participant="shipping",
        ),
    ]
    ledgers: dict[str, list[LedgerRow]] = {}
    for r in [*done, *undone]:
        ledgers.setdefault(r.participant, []).append(r)
    succeeded = {s.name: "succeeded" for s in ASYNC.steps}
    return Evidence(
        definitions={"order_async": ASYNC},
        sagas={
            "s-async": SagaRecord("s-async", "order_async", "completed", {}, succeeded),
            "s-undone": SagaRecord("s-undone", "order_async", "compensated", {}, {}),
        },
        ledgers={k: tuple(v) for k, v in ledgers.items()},
        completions={"shipping": completions},
    )


def _owed(saga_id: str, status: str, step: str = "create_shipment") -> CompletionRow:
    return CompletionRow("shipping", f"{saga_id}:{step}:action", saga_id, step, status, 200, 1)


def test_callback_completions_are_one_applied_action() -> None:
    evidence = _async_evidence(
        _owed("s-async", "delivered"), replace(_owed("s-undone", "refused"), http_status=409)
    )
    clean = check_callbacks(evidence, evidence.rows_by_call())
    assert clean.ok, clean.violations
    assert clean.checked == 3

    planted = _async_evidence(
        _owed("s-async", "pending"),  # the saga completed: its completion was delivered
        _owed("s-undone", "delivered"),
        _owed("s-async", "delivered", step="charge"),  # not a callback step
        shipped="rejected",  # a completion owed for an effect that never happened
    )
    found = check_callbacks(planted, planted.rows_by_call())
    messages = sorted(v.message for v in found.violations)
    assert len(messages) == 4, messages
    assert "saga completed but the completions of create_shipment are ['pending']" in messages
    assert any("charge, which does not complete by callback" in m for m in messages)
    # Shipping owes a completion for the charge, which payments applied, not shipping.
    assert "completion of charge owed for an action whose ledger shows nothing" in messages
    assert any("whose ledger shows ['rejected']" in m for m in messages)


def test_a_caught_saga_comes_with_its_trail_and_no_other_does() -> None:
    from orchestrator.check.trails import trails

    twice = replace(row("s-done", "charge", "action", "applied", 3.5), key="s-done:charge:action:2")
    ev = evidence(rows=[*clean_rows(), twice])
    events = {"s-done": [{"type": "completed"}], "s-refused": [{"type": "compensated"}]}
    found = trails(ev, events, verify(ev))
    assert list(found) == ["s-done"]
    trail = found["s-done"]
    assert trail["saga"]["status"] == "completed"
    assert trail["events"] == [{"type": "completed"}]
    assert {r["key"] for r in trail["ledger"]} >= {"s-done:charge:action", "s-done:charge:action:2"}
    assert all(call["saga_id"] == "s-done" for call in trail["wire"])


def _callback_event(outcome: str, attempt: int = 1) -> dict[str, object]:
    return {"kind": "callback", "step": "create_shipment", "attempt": attempt, "outcome": outcome}


@pytest.mark.parametrize(
    ("events", "accepted"),
    [
        ([_callback_event("refused")], 0),  # went on without any completion
        ([_callback_event("succeeded"), _callback_event("succeeded", 2)], 2),
    ],
)
def test_a_completed_saga_went_on_by_exactly_one_accepted_completion(
    events: list[dict[str, object]], accepted: int
) -> None:
    delivered = _async_evidence(_owed("s-async", "delivered"))
    clean = replace(delivered, events={"s-async": [_callback_event("succeeded")]})
    assert check_callbacks(clean, clean.rows_by_call()).ok
    planted = replace(delivered, events={"s-async": events})
    found = check_callbacks(planted, planted.rows_by_call())
    assert [v.message for v in found.violations] == [
        f"saga completed but the orchestrator accepted {accepted} completions of create_shipment"
    ]
