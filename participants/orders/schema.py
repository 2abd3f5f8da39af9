"""Tables of the orders service.

An order is created ``pending`` by its saga and ends ``approved`` or
``rejected``. ``pending`` is a semantic lock (Richardson, after Garcia-Molina):
while the saga is at work, only that saga (``saga_id``) may change the order.
"""

from __future__ import annotations

import sqlalchemy as sa

from participants.kit import NAMING_CONVENTION, UtcDateTime

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("saga_id", sa.String(100), nullable=False),
    sa.Column("account", sa.String(64), nullable=False),
    sa.Column("sku", sa.String(64), nullable=False),
    sa.Column("qty", sa.Integer, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # pending | approved | rejected
    sa.Column("note", sa.String(500), nullable=True),
    sa.Column("shipment_id", sa.String(36), nullable=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.CheckConstraint("qty > 0 AND amount > 0", name="positive"),
    sa.Index(None, "saga_id"),
    info={"entity": "order"},
)
