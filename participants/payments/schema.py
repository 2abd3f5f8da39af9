"""Tables of the payments service.

Money is an integer number of minor units. ``balance`` never goes negative (a
check constraint backs the code), and every change of a balance writes a
``movements`` row carrying the balance after it, so the money can be audited
from movements alone: per account, the movements sum to the balance.
"""

from __future__ import annotations

import sqlalchemy as sa

from participants.kit import NAMING_CONVENTION, UtcDateTime

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("balance", sa.BigInteger, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.CheckConstraint("balance >= 0", name="balance_not_negative"),
    info={"entity": "account"},
)

charges = sa.Table(
    "charges",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("account_id", sa.String(64), sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # captured | refunded
    sa.Column("order_id", sa.String(64), nullable=True),
    sa.Column("saga_id", sa.String(100), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.CheckConstraint("amount > 0", name="amount_positive"),
    info={"entity": "charge"},
)

movements = sa.Table(
    "movements",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account_id", sa.String(64), sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),  # opening | charge | refund
    sa.Column("amount", sa.BigInteger, nullable=False),  # signed: charges are negative
    sa.Column("balance_after", sa.BigInteger, nullable=False),
    sa.Column("charge_id", sa.String(36), sa.ForeignKey("charges.id"), nullable=True),
    sa.Column("saga_id", sa.String(100), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Index(None, "account_id", "id"),
    sa.Index(None, "saga_id"),
)
