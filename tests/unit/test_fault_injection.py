"""The fault picker the composition root hands to the transport: outages and counts."""

from __future__ import annotations

from typing import cast

from orchestrator.fault_injection import FaultInjector
from orchestrator.fault_rules import FaultRule
from orchestrator.store.errors import StoreUnavailable
from orchestrator.store.faults import FaultStore
from orchestrator.transport.call import CallIdentity
from orchestrator.transport.faults import FaultPicker

CALL = CallIdentity("orders", "payments", "charge", "action", "s1", 1)


class _Store:
    """A FaultStore that can be taken down."""

    def __init__(self, rules: list[FaultRule]) -> None:
        self.rules = rules
        self.down = False
        self.fired: list[int] = []

    async def all(self) -> list[FaultRule]:
        if self.down:
            raise StoreUnavailable("down")
        return list(self.rules)

    async def fire(self, rule_id: int) -> bool:
        if self.down:
            raise StoreUnavailable("down")
        self.fired.append(rule_id)
        return True


def _injector(store: _Store) -> FaultInjector:
    return FaultInjector(cast(FaultStore, store), refresh_s=0.0)


async def test_a_matching_rule_is_picked_and_counted() -> None:
    store = _Store([FaultRule(1, "error", step="other"), FaultRule(2, "error", step="charge")])
    picker: FaultPicker = _injector(store)
    rule = await picker.pick(CALL)
    assert rule is not None
    assert rule.id == 2
    assert store.fired == [2]


async def test_a_failed_re_read_keeps_the_rules_it_knew() -> None:
    store = _Store([FaultRule(1, "delay", delay_ms=1)])
    injector = _injector(store)
    assert await injector.pick(CALL) is not None
    store.down, store.rules = True, []
    assert await injector._current() == [FaultRule(1, "delay", delay_ms=1)]


async def test_a_fault_that_cannot_be_counted_is_not_injected() -> None:
    store = _Store([FaultRule(1, "error")])
    injector = _injector(store)
    await injector._current()
    store.down = True
    assert await injector.pick(CALL) is None
    assert store.fired == []


def test_a_seeded_draw_is_the_same_wherever_it_is_made() -> None:
    rule = FaultRule(7, "error", probability=0.5, seed=42)
    draws = [rule.draws("s1", "charge", "action", n) for n in range(1, 200)]
    assert draws == [rule.draws("s1", "charge", "action", n) for n in range(1, 200)]
    assert 0 < sum(draws) < len(draws)
