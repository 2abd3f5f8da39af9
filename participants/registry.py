"""The example services, by name: how to build, seed and serve each one.

``saga up`` and the tests start services from here; each service's Alembic
section in ``alembic.ini`` carries the same name.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from participants.inventory import app as inventory
from participants.inventory import demo as inventory_demo
from participants.kit import ParticipantSettings
from participants.orders import app as orders
from participants.orders import demo as orders_demo
from participants.payments import app as payments
from participants.payments import demo as payments_demo
from participants.shipping import app as shipping
from participants.shipping import demo as shipping_demo


@dataclass(frozen=True)
class ServiceSpec:
    """One example service."""

    name: str
    """Participant name, Alembic section and ``python -m participants.<name>``."""
    create_app: Callable[[ParticipantSettings | None], FastAPI]
    port: int
    """Default port on loopback."""
    seed: Callable[[str], Coroutine[Any, Any, None]]
    """``seed_demo_data``: add the demo rows to the migrated database at a URL; idempotent."""
    description: str

    def settings(self, **values: Any) -> ParticipantSettings:
        """Settings for this service: ``PARTICIPANT_*`` variables overridden by ``values``."""
        return ParticipantSettings(**values)


SERVICES: dict[str, ServiceSpec] = {
    spec.name: spec
    for spec in (
        ServiceSpec(
            "orders",
            orders.create_app,
            9001,
            orders_demo.seed_demo_data,
            "Orders: created pending by a saga, then approved or rejected.",
        ),
        ServiceSpec(
            "payments",
            payments.create_app,
            9002,
            payments_demo.seed_demo_data,
            "Payments: accounts, charges and refunds, with an auditable movement ledger.",
        ),
        ServiceSpec(
            "inventory",
            inventory.create_app,
            9003,
            inventory_demo.seed_demo_data,
            "Inventory: stock items, reservations, release and commit.",
        ),
        ServiceSpec(
            "shipping",
            shipping.create_app,
            9004,
            shipping_demo.seed_demo_data,
            "Shipping: shipments created after the pivot, cancellable.",
        ),
    )
}
