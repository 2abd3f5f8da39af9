"""The participant kit: turn a FastAPI service into a correct saga participant.

A service declares its idempotent endpoints on an :class:`EffectRouter`, builds
its app with :func:`create_participant_app`, and creates the kit's table from
its first Alembic migration with :func:`create_kit_tables` (and, for actions
that complete by callback, ``participant_completions`` with
:func:`create_completion_tables`). In return every
action and compensation is applied at most once per ``Idempotency-Key``, with
the key and the answer committed in the same transaction as the business
change; compensations that overtake their action leave a tombstone; and the
service exposes ``/_ledger``, ``/_callbacks``, ``/_faults``, ``/healthz``, ``/readyz`` and
``/metrics``. The kit never imports the orchestrator: any service can use it.
"""

from participants.kit.app import (
    DatabaseDep,
    Kit,
    KitDep,
    create_participant_app,
    get_database,
    get_kit,
)
from participants.kit.callbacks import (
    CALLBACK_TOKEN_HEADER,
    CALLBACK_URL_HEADER,
    CallbackEntry,
    Completer,
)
from participants.kit.database import Database
from participants.kit.demo import DemoData, insert_missing, seed_database
from participants.kit.effects import ActionRecord, Effect, EffectRouter
from participants.kit.errors import Rejected, Unavailable, error_body
from participants.kit.faults import FaultSpec
from participants.kit.keys import IDEMPOTENCY_HEADER, IdempotencyKey
from participants.kit.ledger import LedgerEntry
from participants.kit.migrate import (
    current_is_head,
    downgrade,
    run_migrations,
    upgrade,
    upgrade_async,
)
from participants.kit.optimistic import Change, RowNotFound, VersionConflict, update_versioned
from participants.kit.schema import (
    NAMING_CONVENTION,
    CompletionStatus,
    EffectStatus,
    Phase,
    UtcDateTime,
    create_completion_tables,
    create_kit_tables,
    drop_completion_tables,
    drop_kit_tables,
    utcnow,
)
from participants.kit.schema import completions as kit_completions
from participants.kit.schema import metadata as kit_metadata
from participants.kit.settings import ParticipantSettings

__all__ = [
    "CALLBACK_TOKEN_HEADER",
    "CALLBACK_URL_HEADER",
    "IDEMPOTENCY_HEADER",
    "NAMING_CONVENTION",
    "ActionRecord",
    "CallbackEntry",
    "Change",
    "Completer",
    "CompletionStatus",
    "Database",
    "DatabaseDep",
    "DemoData",
    "Effect",
    "EffectRouter",
    "EffectStatus",
    "FaultSpec",
    "IdempotencyKey",
    "Kit",
    "KitDep",
    "LedgerEntry",
    "ParticipantSettings",
    "Phase",
    "Rejected",
    "RowNotFound",
    "Unavailable",
    "UtcDateTime",
    "VersionConflict",
    "create_completion_tables",
    "create_kit_tables",
    "create_participant_app",
    "current_is_head",
    "downgrade",
    "drop_completion_tables",
    "drop_kit_tables",
    "error_body",
    "get_database",
    "get_kit",
    "insert_missing",
    "kit_completions",
    "kit_metadata",
    "run_migrations",
    "seed_database",
    "update_versioned",
    "upgrade",
    "upgrade_async",
    "utcnow",
]
