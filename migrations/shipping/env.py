"""Alembic environment of the shipping service: section [shipping] of alembic.ini.

Run with `alembic --name shipping upgrade head` (URL from PARTICIPANT_DATABASE_URL)
or `participants.kit.migrate.upgrade("shipping", url)`.
"""

from participants.kit import kit_metadata, run_migrations
from participants.shipping.schema import metadata

run_migrations("shipping", [kit_metadata, metadata])
