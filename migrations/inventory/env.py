"""Alembic environment of the inventory service: section [inventory] of alembic.ini.

Run with `alembic --name inventory upgrade head` (URL from PARTICIPANT_DATABASE_URL)
or `participants.kit.migrate.upgrade("inventory", url)`.
"""

from participants.inventory.schema import metadata
from participants.kit import kit_metadata, run_migrations

run_migrations("inventory", [kit_metadata, metadata])
