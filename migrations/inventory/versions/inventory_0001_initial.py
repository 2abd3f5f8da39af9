"""Kit tables, items and reservations.

Revision ID: inventory_0001
Revises:
Create Date: 2025-01-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from participants.kit import create_kit_tables, drop_kit_tables

revision: str = "inventory_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_kit_tables(op)
    op.create_table(
        "items",
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("available", sa.Integer, nullable=False),
        sa.Column("reserved", sa.Integer, nullable=False),
        sa.Column("committed", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "available >= 0 AND reserved >= 0 AND committed >= 0", name="ck_items_counts"
        ),
        sa.PrimaryKeyConstraint("sku", name="pk_items"),
    )
    op.create_table(
        "reservations",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("qty", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("order_id", sa.String(64), nullable=True),
        sa.Column("saga_id", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("qty > 0", name="ck_reservations_qty_positive"),
        sa.ForeignKeyConstraint(["sku"], ["items.sku"], name="fk_reservations_sku_items"),
        sa.PrimaryKeyConstraint("id", name="pk_reservations"),
    )
    op.create_index("ix_reservations_saga_id", "reservations", ["saga_id"])


def downgrade() -> None:
    op.drop_index("ix_reservations_saga_id", table_name="reservations")
    op.drop_table("reservations")
    op.drop_table("items")
    drop_kit_tables(op)
