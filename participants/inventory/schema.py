"""Tables of the inventory service.

An item's units are ``available`` (free to reserve), ``reserved`` (held by a
reservation) or ``committed`` (a reservation turned into a shipment). Nothing
creates or destroys units, so ``available + reserved + committed`` per item is
constant: stock is conserved whatever the sagas do.
"""

from __future__ import annotations

import sqlalchemy as sa

from participants.kit import NAMING_CONVENTION, UtcDateTime

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

items = sa.Table(
    "items",
    metadata,
    sa.Column("sku", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("available", sa.Integer, nullable=False),
    sa.Column("reserved", sa.Integer, nullable=False),
    sa.Column("committed", sa.Integer, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.CheckConstraint("available >= 0 AND reserved >= 0 AND committed >= 0", name="counts"),
    info={"entity": "item"},
)

reservations = sa.Table(
    "reservations",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("sku", sa.String(64), sa.ForeignKey("items.sku"), nullable=False),
    sa.Column("qty", sa.Integer, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # reserved | released | committed
    sa.Column("order_id", sa.String(64), nullable=True),
    sa.Column("saga_id", sa.String(100), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.CheckConstraint("qty > 0", name="qty_positive"),
    sa.Index(None, "saga_id"),
    info={"entity": "reservation"},
)
