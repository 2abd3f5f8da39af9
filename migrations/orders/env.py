"""Alembic environment of the orders service: section [orders] of alembic.ini.

Run with `alembic --name orders upgrade head` (URL from PARTICIPANT_DATABASE_URL)
or `participants.kit.migrate.upgrade("orders", url)`.
"""

from participants.kit import kit_metadata, run_migrations
from participants.orders.schema import metadata

run_migrations("orders", [kit_metadata, metadata])
