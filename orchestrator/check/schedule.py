"""The seeded plan of a campaign: its world, its sagas, its fault rules and its chaos.

Pure: :func:`build_schedule` draws everything from one ``random.Random(seed)``
in a fixed order, so the same seed and options give the same schedule, byte
for byte (:meth:`Schedule.fingerprint`). What a schedule cannot fix is which
individual calls a probabilistic rule hits: transport rules draw from the
saga id the orchestrator generates, and the services' rules from the order in
which concurrent calls arrive. Chaos events fire at a fraction of the sagas
started, not at a wall-clock time, so they land during the load whatever the
machine's speed.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from orchestrator.check.evidence import DefinitionInfo

TRANSPORT_MODES = ("error", "timeout", "delay", "drop_request", "drop_response")
"""Faults the orchestrator's transport injects (``/v1/faults``)."""
SERVICE_MODES = ("error_before_commit", "error_after_commit", "delay", "reject")
"""Faults kit-built services inject in themselves (``/_faults``)."""
DELAY_MS = 300
CANCEL_RATE = 0.05
"""Fraction of the sagas the client cancels (at least one when positive)."""
CANCEL_AFTER_S = 0.5
"""A cancel is sent up to this long after its saga's start was acknowledged."""

Layer = Literal["transport", "service"]
ChaosKind = Literal["kill", "zombie", "db_crash", "partition", "broker_crash", "consumer_kill"]
PARTITION_CUTS = ("db:both", "db:to_client", "participant")
"""What the partitions cut, in turn: a worker from the database both ways, only its
answers, then every worker from one participant."""


@dataclass(frozen=True)
class FaultRule:
    """One fault rule to install: at the transport, or in one service."""

    layer: Layer
    mode: str
    probability: float
    seed: int
    participant: str | None = None
    """Service rules: the service whose board gets the rule."""
    endpoint: str | None = None
    phase: str | None = None

    def body(self) -> dict[str, Any]:
        """The JSON to post: to ``/v1/faults`` (transport) or the service's ``/_faults``."""
        body: dict[str, Any] = {"mode": self.mode, "probability": self.probability}
        body["seed"] = self.seed
        if self.mode == "delay":
            body["delay_ms"] = DELAY_MS
        if self.layer == "transport" and self.mode == "error":
            body["status"] = 503
        if self.endpoint is not None:
            body["endpoint"] = self.endpoint
        if self.phase is not None:
            body["phase"] = self.phase
        return body


@dataclass(frozen=True)
class ChaosEvent:
    """Something done to the processes while sagas run."""

    kind: ChaosKind
    at: float
    """Fraction of the sagas started when it fires (0..1)."""
    worker: int = 0
    """Which worker slot (kill, zombie)."""
    hold_s: float = 0.0
    """kill: restart after; zombie: paused for; db_crash: down for."""
    aim: bool = False
    """kill, zombie: first wait (5 s at most) for the worker to have a call in flight."""
    cut: str | None = None
    """partition: ``db:both``, ``db:to_client`` (worker slot ``worker``) or
    ``participant:<name>``; ``hold_s`` is how long it lasts. consumer_kill:
    ``participant:<name>``, the service killed (restarted after ``hold_s``)."""


@dataclass(frozen=True)
class SagaPlan:
    """One saga to start."""

    number: int
    definition: str
    input: Mapping[str, Any]


@dataclass(frozen=True)
class CancelPlan:
    """A saga the client cancels: before its pivot the cancel is taken, after it refused."""

    number: int
    """The saga's plan number."""
    after_s: float
    """Seconds after its start was acknowledged."""


@dataclass(frozen=True)
class World:
    """What the example services hold before the campaign."""

    balances: Mapping[str, int]
    stock: Mapping[str, int]


@dataclass(frozen=True)
class Schedule:
    """Everything a campaign decides up front."""

    seed: int
    world: World
    sagas: tuple[SagaPlan, ...]
    rules: tuple[FaultRule, ...]
    chaos: tuple[ChaosEvent, ...]
    cancels: tuple[CancelPlan, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """The schedule as JSON (sagas summarised by their fingerprint)."""
        return {
            "seed": self.seed,
            "fingerprint": self.fingerprint(),
            "world": {"balances": dict(self.world.balances), "stock": dict(self.world.stock)},
            "sagas": len(self.sagas),
            "sagas_fingerprint": _digest([asdict(s) for s in self.sagas]),
            "rules": [asdict(r) for r in self.rules],
            "chaos": [asdict(c) for c in self.chaos],
            "cancels": [asdict(c) for c in self.cancels],
        }

    def fingerprint(self) -> str:
        """SHA-256 of the whole schedule: equal for equal seeds and options."""
        return _digest(
            {
                "seed": self.seed,
                "world": asdict(self.world),
                "sagas": [asdict(s) for s in self.sagas],
                "rules": [asdict(r) for r in self.rules],
                "chaos": [asdict(c) for c in self.chaos],
                "cancels": [asdict(c) for c in self.cancels],
            }
        )


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def rule_probability(fault_rate: float, rules_per_call: int) -> float:
    """Per-rule probability so that a call meets at least one of ``rules_per_call`` rules
    with probability ``fault_rate`` (rules draw independently)."""
    if fault_rate <= 0 or rules_per_call <= 0:
        return 0.0
    return round(1.0 - float((1.0 - fault_rate) ** (1.0 / rules_per_call)), 6)


@dataclass(frozen=True)
class Plan:
    """The options a schedule depends on."""

    seed: int
    sagas: int
    definitions: Mapping[str, DefinitionInfo]
    fault_rate: float = 0.2
    transport_modes: Sequence[str] = TRANSPORT_MODES
    service_modes: Sequence[str] = SERVICE_MODES
    workers: int = 2
    kills: int = 0
    zombies: int = 0
    db_crashes: int = 0
    lease_s: float = 3.0
    cancel_rate: float = CANCEL_RATE
    partitions: int = 0
    broker_crashes: int = 0
    consumer_kills: int = 0
    #: The participants reached through the broker (whose consumers can be killed).
    broker_participants: Sequence[str] = ()


def build_schedule(plan: Plan) -> Schedule:
    """Draw the world, the sagas, the rules, the chaos and the cancels from ``plan.seed``."""
    rng = random.Random(plan.seed)
    world = _world(rng, plan.sagas)
    accounts, skus = sorted(world.balances), sorted(world.stock)
    names = sorted(plan.definitions)
    sagas = tuple(
        SagaPlan(
            number=n,
            definition=rng.choice(names),
            input={
                "account": rng.choice(accounts),
                "sku": rng.choice(skus),
                "qty": rng.randint(1, 3),
                "amount": rng.randint(5, 50),
            },
        )
        for n in range(plan.sagas)
    )
    return Schedule(plan.seed, world, sagas, _rules(rng, plan), _chaos(rng, plan), _cancels(plan))


def _cancels(plan: Plan) -> tuple[CancelPlan, ...]:
    # A generator of their own, so that cancels leave every other draw as it was.
    if plan.cancel_rate <= 0 or plan.sagas == 0:
        return ()
    rng = random.Random(f"{plan.seed}:cancels")
    count = min(plan.sagas, max(1, round(plan.sagas * plan.cancel_rate)))
    numbers = sorted(rng.sample(range(plan.sagas), count))
    return tuple(CancelPlan(n, round(rng.uniform(0.0, CANCEL_AFTER_S), 3)) for n in numbers)


def _world(rng: random.Random, sagas: int) -> World:
    # Supply a little short of the expected demand, so that late sagas meet
    # insufficient funds or stock and compensate: a mix of both outcomes.
    accounts = max(4, math.ceil(sagas / 25))
    items = max(3, math.ceil(sagas / 50))
    demand_money = sagas / accounts * 27.5
    demand_units = sagas / items * 2
    balances = {
        f"acct-{i:03d}": max(50, round(demand_money * rng.uniform(0.75, 1.0)))
        for i in range(accounts)
    }
    stock = {
        f"sku-{i:02d}": max(5, round(demand_units * rng.uniform(0.75, 1.0))) for i in range(items)
    }
    return World(balances, stock)


def _rules(rng: random.Random, plan: Plan) -> tuple[FaultRule, ...]:
    per_call = len(plan.transport_modes) + len(plan.service_modes)
    p = rule_probability(plan.fault_rate, per_call)
    if p == 0:
        return ()
    rules = [FaultRule("transport", mode, p, rng.randrange(2**31)) for mode in plan.transport_modes]
    steps = sorted(
        {s for d in plan.definitions.values() for s in d.steps},
        key=lambda s: (s.participant, s.name, s.stage),
    )
    for participant in sorted({s.participant for s in steps}):
        for mode in plan.service_modes:
            if mode != "reject":
                rules.append(FaultRule("service", mode, p, rng.randrange(2**31), participant))
                continue
            # A refusal is only a fault a saga can take before its pivot: a retriable
            # step refused for good parks the saga by design. Rules match endpoints,
            # so one retriable in any definition is spared (order_async books the
            # shipment before the pivot, order after it).
            mine = [s for s in steps if s.participant == participant]
            spared = {s.action_path for s in mine if s.kind == "retriable"}
            endpoints = sorted({s.action_path for s in mine} - spared)
            for endpoint in endpoints:
                rules.append(
                    FaultRule(
                        "service", mode, p, rng.randrange(2**31), participant, endpoint, "action"
                    )
                )
    return tuple(rules)


def _chaos(rng: random.Random, plan: Plan) -> tuple[ChaosEvent, ...]:
    crashes: list[ChaosKind] = ["db_crash"] * plan.db_crashes
    kills: list[ChaosKind] = ["kill"] * plan.kills
    zombies: list[ChaosKind] = ["zombie"] * plan.zombies
    partitions: list[ChaosKind] = ["partition"] * plan.partitions
    kinds = kills + zombies + crashes + partitions
    # Added after the others: a schedule without broker chaos draws as it always did.
    kinds += ["broker_crash"] * plan.broker_crashes
    kinds += ["consumer_kill"] * plan.consumer_kills
    rng.shuffle(kinds)
    # One slot of the load per event, so that they spread over it instead of
    # bunching up (events run one after the other, and a zombie lasts seconds).
    low, high = 0.05, 0.9
    width = (high - low) / max(1, len(kinds))
    events: list[ChaosEvent] = []
    kill_number = partition_number = consumer_number = 0
    participants = sorted({s.participant for d in plan.definitions.values() for s in d.steps})
    for slot, kind in enumerate(kinds):
        at = low + width * (slot + rng.uniform(0.1, 0.9))
        if kind == "kill":
            # Every other kill is aimed at a call in flight (the worst moment: the
            # effect may be applied and its answer lost); the others land anywhere.
            hold = rng.uniform(0.3, 1.5)
            events.append(
                ChaosEvent(kind, at, rng.randrange(plan.workers), hold, kill_number % 2 == 0)
            )
            kill_number += 1
        elif kind == "zombie":
            # A zombie must wake up holding an answer, or it has nothing late to write.
            hold = 2 * plan.lease_s + 1.5
            events.append(ChaosEvent(kind, at, rng.randrange(plan.workers), hold, aim=True))
        elif kind == "partition":
            # Longer than the lease, so that the cut-off worker's leases run out.
            cut = PARTITION_CUTS[partition_number % len(PARTITION_CUTS)]
            if cut == "participant":
                cut = f"participant:{rng.choice(participants)}"
            hold = 2 * plan.lease_s + 1.5
            events.append(
                ChaosEvent(kind, at, rng.randrange(plan.workers), hold, aim=True, cut=cut)
            )
            partition_number += 1
        elif kind == "consumer_kill":
            # Every other one aimed at a command being handled; restarted after hold_s.
            target = f"participant:{rng.choice(sorted(plan.broker_participants))}"
            aim = consumer_number % 2 == 0
            events.append(ChaosEvent(kind, at, 0, rng.uniform(0.5, 2.0), aim=aim, cut=target))
            consumer_number += 1
        else:
            events.append(ChaosEvent(kind, at, 0, rng.uniform(2.0, 4.0)))
    return tuple(events)
