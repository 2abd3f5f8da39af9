"""Alembic environment of the payments service: section [payments] of alembic.ini.

Run with `alembic --name payments upgrade head` (URL from PARTICIPANT_DATABASE_URL)
or `participants.kit.migrate.upgrade("payments", url)`.
"""

from participants.kit import kit_metadata, run_migrations
from participants.payments.schema import metadata

run_migrations("payments", [kit_metadata, metadata])
