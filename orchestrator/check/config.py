"""A campaign's options, checked before anything starts, and the definitions it can run.

Built-in definitions, all against the example services:

- ``order`` — the example services' own saga (:mod:`participants.order_saga`);
- ``order_parallel`` — the same business with its first two steps in one
  parallel group, so compensations of concurrent members are exercised too;
- ``order_async`` — ``order_parallel`` with the shipment booked before the
  pivot by a callback step: shipping answers ``202`` and completes the step
  later, and a shipment whose saga compensates is cancelled.

All take ``{"account", "sku", "qty", "amount"}``, which is what the business
invariants (:mod:`orchestrator.check.business`) reason about.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from orchestrator.check.schedule import CANCEL_RATE, SERVICE_MODES, TRANSPORT_MODES
from participants.order_saga import ORDER_DEFINITION


def _order_parallel() -> dict[str, Any]:
    built = copy.deepcopy(ORDER_DEFINITION)
    create_order, reserve_stock, *rest = built["steps"]
    # A member of a parallel group cannot read a sibling's result.
    reserve_stock["action"]["body"].pop("order_id", None)
    built["name"] = "order_parallel"
    built["steps"] = [{"parallel": [create_order, reserve_stock]}, *rest]
    return built


def _order_async() -> dict[str, Any]:
    built = _order_parallel()
    group, charge, create_shipment, *rest = built["steps"]
    # Only a compensatable step may complete by callback (one that never calls back
    # must be undoable), so the shipment is booked before the pivot.
    create_shipment["kind"] = "compensatable"
    create_shipment["compensation"] = {"path": "/shipments/cancel"}
    create_shipment["completion"] = "callback"
    create_shipment["retry"] = copy.deepcopy(charge["retry"])
    # Also how long the 202 may wait for its completion; outrunning it is no
    # fault (the step fails and the saga compensates) but proves less.
    create_shipment["timeout_ms"] = 5000
    built["name"] = "order_async"
    built["steps"] = [group, create_shipment, charge, *rest]
    return built


DEFINITIONS: dict[str, dict[str, Any]] = {
    "order": copy.deepcopy(ORDER_DEFINITION),
    "order_parallel": _order_parallel(),
    "order_async": _order_async(),
}
"""Built-in definitions by name, in the API's JSON format."""


def definition(name: str) -> dict[str, Any]:
    """A copy of the built-in definition ``name`` (KeyError if there is none)."""
    return copy.deepcopy(DEFINITIONS[name])


TRANSPORTS = ("http", "amqp", "mixed")
ALL_SERVICES = ("inventory", "orders", "payments", "shipping")
#: In ``--transport mixed``: the pivot's service and one before it over the broker.
MIXED_BROKER_PARTICIPANTS = ("inventory", "payments")


@dataclass(frozen=True)
class CampaignConfig:
    """What to run, how hard to push, and where to keep the results.

    The defaults suit a laptop or a two-core CI runner (a minute or two).
    """

    sagas: int = 300
    concurrency: int = 20
    fault_rate: float = 0.2
    """Chance that a participant call meets at least one fault (all layers together)."""
    transport_modes: tuple[str, ...] = TRANSPORT_MODES
    service_modes: tuple[str, ...] = SERVICE_MODES
    workers: int = 2
    kills: int = 2
    zombies: int = 1
    db_crashes: int = 0
    """Crashes of a private PostgreSQL cluster (``pg_ctl -m immediate``), spread over the load."""
    partitions: int = 0
    """Network partitions (see :mod:`orchestrator.check.chaos`); needs 2+ workers."""
    seed: int = 1
    definitions: tuple[str, ...] = ("order", "order_parallel")
    time_limit_s: float = 900.0
    database_url: str | None = None
    lease_s: float = 3.0
    workdir: Path | None = None
    """Where logs (and by default the report) go; default ``.saga/check/<run>``."""
    report_path: Path | None = None
    keep_databases: bool = False
    progress: bool = True
    cancel_rate: float = CANCEL_RATE
    """Fraction of the sagas the client cancels shortly after starting them."""
    transport: str = "http"
    """How workers reach the services: ``http``, ``amqp`` (every service through a private
    RabbitMQ node) or ``mixed`` (:data:`MIXED_BROKER_PARTICIPANTS` through it, the rest HTTP)."""
    broker_crashes: int = 0
    """SIGKILLs of the private broker node (restarted), spread over the load."""
    consumer_kills: int = 0
    """SIGKILLs of broker participants (their consumers), every other one mid-command."""

    @property
    def broker_participants(self) -> tuple[str, ...]:
        """The services reached through the broker."""
        if self.transport == "amqp":
            return ALL_SERVICES
        if self.transport == "mixed":
            return MIXED_BROKER_PARTICIPANTS
        return ()

    def problems(self) -> list[str]:
        """Every reason these options cannot make a campaign (empty: fine)."""
        return [*self._number_problems(), *self._combination_problems(), *self._name_problems()]

    def _number_problems(self) -> list[str]:
        checks = [
            (self.sagas >= 1, "--sagas must be at least 1"),
            (self.concurrency >= 1, "--concurrency must be at least 1"),
            (0 <= self.fault_rate < 1, "--fault-rate must be in [0, 1)"),
            (self.workers >= 1, "--workers must be at least 1"),
            (
                self.kills >= 0 and self.zombies >= 0 and self.db_crashes >= 0,
                "--kills, --zombies and --db-crashes cannot be negative",
            ),
            (self.partitions >= 0, "--partitions cannot be negative"),
            (
                self.broker_crashes >= 0 and self.consumer_kills >= 0,
                "--broker-crashes and --consumer-kills cannot be negative",
            ),
            (self.lease_s > 0.5, "--lease must be more than 0.5 seconds"),
            (self.time_limit_s > 0, "--time-limit must be positive"),
            (0 <= self.cancel_rate <= 1, "--cancel-rate must be in [0, 1]"),
        ]
        return [message for ok, message in checks if not ok]

    def _combination_problems(self) -> list[str]:
        found = []
        if self.zombies and self.workers < 2:
            found.append("--zombies needs --workers 2 or more (someone must take over)")
        if self.partitions and self.workers < 2:
            found.append("--partitions needs --workers 2 or more (someone must take over)")
        if self.db_crashes and self.database_url:
            found.append("--db-crash runs its own PostgreSQL cluster: leave --database-url out")
        if not self.definitions:
            found.append("at least one definition is needed")
        if self.transport not in TRANSPORTS:
            found.append(f"unknown --transport {self.transport!r} (known: {', '.join(TRANSPORTS)})")
        elif self.transport == "http" and (self.broker_crashes or self.consumer_kills):
            found.append("--broker-crashes and --consumer-kills need --transport amqp or mixed")
        return found

    def _name_problems(self) -> list[str]:
        known = ", ".join(DEFINITIONS)
        found = [
            f"unknown definition {n!r} (known: {known})"
            for n in self.definitions
            if n not in DEFINITIONS
        ]
        found += [
            f"unknown transport mode {m!r}"
            for m in self.transport_modes
            if m not in TRANSPORT_MODES
        ]
        found += [
            f"unknown service mode {m!r}" for m in self.service_modes if m not in SERVICE_MODES
        ]
        return found

    def as_json(self) -> dict[str, Any]:
        """The options as JSON (paths as strings, the database URL without its password)."""
        from orchestrator.settings import redact_url

        data = asdict(self)
        for key in ("workdir", "report_path"):
            data[key] = str(data[key]) if data[key] is not None else None
        data["database_url"] = redact_url(self.database_url) if self.database_url else None
        data["transport_modes"] = list(self.transport_modes)
        data["service_modes"] = list(self.service_modes)
        data["definitions"] = list(self.definitions)
        return data
