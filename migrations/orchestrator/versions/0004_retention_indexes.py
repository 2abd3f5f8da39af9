"""retention: resting sagas (finished or parked) by status and age; start keys by saga

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
#: name, table, columns, partial-index condition
INDEXES = (
    ("ix_sagas_resting", "sagas", ["status", "updated_at"], WHERE),
    # Deleting a saga cascades to its start keys by saga_id: a scan per saga without it.
    ("ix_saga_start_keys_saga", "saga_start_keys", ["saga_id"], None),
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for name, table, columns, where in INDEXES:
            op.create_index(name, table, columns, sqlite_where=where)
        return
    # A plain CREATE INDEX blocks every write to the table while it reads what
    # may be millions of finished rows; CONCURRENTLY does not, but it cannot run
    # inside the migration's transaction. A build that failed leaves an invalid
    # index behind: a rerun drops it and starts over.
    with op.get_context().autocommit_block():
        for name, table, columns, where in INDEXES:
            op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
            op.create_index(
                name, table, columns, postgresql_where=where, postgresql_concurrently=True
            )


def downgrade() -> None:
    for name, table, _columns, _where in INDEXES:
        op.drop_index(name, table_name=table)
