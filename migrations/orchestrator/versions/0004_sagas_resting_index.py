"""index of resting sagas (finished or parked) by status and age, for retention

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHERE = sa.text("wake_at IS NULL")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # A plain CREATE INDEX blocks every write to sagas while it reads a table
        # that may hold millions of finished rows; CONCURRENTLY does not, but it
        # cannot run inside the migration's transaction. A build that failed
        # leaves an invalid index behind: a rerun drops it and starts over.
        with op.get_context().autocommit_block():
            op.drop_index(
                "ix_sagas_resting",
                table_name="sagas",
                postgresql_concurrently=True,
                if_exists=True,
            )
            op.create_index(
                "ix_sagas_resting",
                "sagas",
                ["status", "updated_at"],
                postgresql_where=WHERE,
                postgresql_concurrently=True,
            )
        return
    op.create_index("ix_sagas_resting", "sagas", ["status", "updated_at"], sqlite_where=WHERE)


def downgrade() -> None:
    op.drop_index("ix_sagas_resting", table_name="sagas")
