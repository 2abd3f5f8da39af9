"""Tables of the shipping service: one shipment per order, ``created`` or ``cancelled``.

Shipping creates shipments by callback when asked to, so its database also
holds the kit's ``participant_completions`` (copied into this metadata, so its
migrations and schema checks see it).
"""

from __future__ import annotations

import sqlalchemy as sa

from participants.kit import NAMING_CONVENTION, UtcDateTime, kit_completions

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

shipments = sa.Table(
    "shipments",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("order_id", sa.String(64), nullable=False),
    sa.Column("sku", sa.String(64), nullable=False),
    sa.Column("qty", sa.Integer, nullable=False),
    sa.Column("address", sa.String(500), nullable=True),
    sa.Column("reservation_id", sa.String(36), nullable=True),
    sa.Column("status", sa.String(20), nullable=False),  # created | cancelled
    sa.Column("tracking_number", sa.String(40), nullable=False),
    sa.Column("saga_id", sa.String(100), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.CheckConstraint("qty > 0", name="qty_positive"),
    sa.Index(None, "order_id"),
    sa.Index(None, "saga_id"),
    info={"entity": "shipment"},
)

completions = kit_completions.to_metadata(metadata)
