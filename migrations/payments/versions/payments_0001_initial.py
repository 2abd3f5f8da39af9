"""Kit tables, accounts, charges and movements.

Revision ID: payments_0001
Revises:
Create Date: 2025-01-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from participants.kit import create_kit_tables, drop_kit_tables

revision: str = "payments_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_kit_tables(op)
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("balance", sa.BigInteger, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("balance >= 0", name="ck_accounts_balance_not_negative"),
        sa.PrimaryKeyConstraint("id", name="pk_accounts"),
    )
    op.create_table(
        "charges",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("order_id", sa.String(64), nullable=True),
        sa.Column("saga_id", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount > 0", name="ck_charges_amount_positive"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_charges_account_id_accounts"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_charges"),
    )
    op.create_table(
        "movements",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("balance_after", sa.BigInteger, nullable=False),
        sa.Column("charge_id", sa.String(36), nullable=True),
        sa.Column("saga_id", sa.String(100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_movements_account_id_accounts"
        ),
        sa.ForeignKeyConstraint(
            ["charge_id"], ["charges.id"], name="fk_movements_charge_id_charges"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_movements"),
    )
    op.create_index("ix_movements_account_id_id", "movements", ["account_id", "id"])
    op.create_index("ix_movements_saga_id", "movements", ["saga_id"])


def downgrade() -> None:
    op.drop_index("ix_movements_saga_id", table_name="movements")
    op.drop_index("ix_movements_account_id_id", table_name="movements")
    op.drop_table("movements")
    op.drop_table("charges")
    op.drop_table("accounts")
    drop_kit_tables(op)
