"""Completions owed to the orchestrator (shipments booked by callback).

Revision ID: shipping_0002
Revises: shipping_0001
Create Date: 2025-06-01
"""

from collections.abc import Sequence

from alembic import op

from participants.kit import create_completion_tables, drop_completion_tables

revision: str = "shipping_0002"
down_revision: str | Sequence[str] | None = "shipping_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_completion_tables(op)


def downgrade() -> None:
    drop_completion_tables(op)
