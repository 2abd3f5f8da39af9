"""Kit tables and shipments.

Revision ID: shipping_0001
Revises:
Create Date: 2025-01-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from participants.kit import create_kit_tables, drop_kit_tables

revision: str = "shipping_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_kit_tables(op)
    op.create_table(
        "shipments",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("qty", sa.Integer, nullable=False),
        sa.Column("address", sa.String(500), nullable=True),
        sa.Column("reservation_id", sa.String(36), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("tracking_number", sa.String(40), nullable=False),
        sa.Column("saga_id", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("qty > 0", name="ck_shipments_qty_positive"),
        sa.PrimaryKeyConstraint("id", name="pk_shipments"),
    )
    op.create_index("ix_shipments_order_id", "shipments", ["order_id"])
    op.create_index("ix_shipments_saga_id", "shipments", ["saga_id"])


def downgrade() -> None:
    op.drop_index("ix_shipments_saga_id", table_name="shipments")
    op.drop_index("ix_shipments_order_id", table_name="shipments")
    op.drop_table("shipments")
    drop_kit_tables(op)
