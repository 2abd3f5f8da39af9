"""The kit's own table, and the helper a service's first migration calls to create it.

``participant_effects`` holds one row per idempotency key this service has seen:
the request's fingerprint and body, the answer given (status and body), and
what became of the effect. Its primary key is the idempotency key, which is
what makes a duplicate wait for (PostgreSQL) or queue behind (SQLite) the
first call and then find its answer.

``participant_completions`` holds one row per action answered ``202``: the
completion the service still owes the orchestrator (or has delivered). It is
only needed by services that declare callback actions, so it lives in its own
:data:`completion_metadata` and has its own helper,
:func:`create_completion_tables`, which such a service calls from a migration.

Schema changes to these tables ship as new, additive helpers
(``create_kit_tables`` and ``create_completion_tables`` are frozen as version
1), so a migration written today keeps producing the same schema tomorrow.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from alembic.operations import Operations
from sqlalchemy.engine import Dialect


class UtcDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite drops the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UtcDateTime column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)


class Phase(StrEnum):
    """Which half of a step an idempotency key belongs to."""

    ACTION = "action"
    COMPENSATION = "compensation"


class EffectStatus(StrEnum):
    """What became of the effect behind a key (the ledger's ``status``)."""

    PENDING = "pending"  # only ever seen inside the transaction that claimed the key
    APPLIED = "applied"
    REJECTED = "rejected"
    COMPENSATED = "compensated"
    TOMBSTONE = "tombstone"


# Shared by the kit and the example services so constraint names are predictable
# in migrations and on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

effects = sa.Table(
    "participant_effects",
    metadata,
    sa.Column("key", sa.String(400), primary_key=True),
    sa.Column("saga_id", sa.String(100), nullable=False),
    sa.Column("step", sa.String(200), nullable=False),
    sa.Column("phase", sa.String(20), nullable=False),
    sa.Column("endpoint", sa.String(200), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("request_hash", sa.String(64), nullable=True),
    sa.Column("request", sa.JSON, nullable=True),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("response", sa.JSON, nullable=True),
    sa.Column("applied_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Index("ix_participant_effects_saga_id", "saga_id"),
)


def create_kit_tables(op: Operations) -> None:
    """Create the kit's tables (schema version 1); call from a service's first migration."""
    op.create_table(
        "participant_effects",
        *_v1_columns(),
        sa.PrimaryKeyConstraint("key", name="pk_participant_effects"),
    )
    op.create_index("ix_participant_effects_saga_id", "participant_effects", ["saga_id"])


def drop_kit_tables(op: Operations) -> None:
    """Undo :func:`create_kit_tables`; call from that migration's downgrade."""
    op.drop_index("ix_participant_effects_saga_id", table_name="participant_effects")
    op.drop_table("participant_effects")


def _v1_columns() -> list[Any]:
    # Spelled out rather than copied from ``effects`` so that later changes to the
    # live table never alter what an already-written migration creates.
    return [
        sa.Column("key", sa.String(400), nullable=False),
        sa.Column("saga_id", sa.String(100), nullable=False),
        sa.Column("step", sa.String(200), nullable=False),
        sa.Column("phase", sa.String(20), nullable=False),
        sa.Column("endpoint", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=True),
        sa.Column("request", sa.JSON, nullable=True),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("response", sa.JSON, nullable=True),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


class CompletionStatus(StrEnum):
    """Where a completion owed to the orchestrator stands (``/_callbacks``' ``status``)."""

    PENDING = "pending"  # to be sent (again) at ``next_at``
    DELIVERED = "delivered"  # the orchestrator answered 2xx
    REFUSED = "refused"  # a definite 4xx (409: too late, or already completed otherwise)


completion_metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
"""Metadata of ``participant_completions``; a service that has it copies the table
into its own metadata (``completions.to_metadata(metadata)``) so that its
migrations and its schema checks see it."""

completions = sa.Table(
    "participant_completions",
    completion_metadata,
    sa.Column("key", sa.String(400), primary_key=True),
    sa.Column("saga_id", sa.String(100), nullable=False),
    sa.Column("step", sa.String(200), nullable=False),
    sa.Column("callback_url", sa.String(2000), nullable=False),
    sa.Column("token", sa.String(128), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=True),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("tries", sa.Integer, nullable=False),
    sa.Column("next_at", UtcDateTime, nullable=False),
    sa.Column("http_status", sa.Integer, nullable=True),
    sa.Column("last_error", sa.String(500), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Index("ix_participant_completions_status_next_at", "status", "next_at"),
)


def create_completion_tables(op: Operations) -> None:
    """Create ``participant_completions`` (version 1); call from a migration of a service
    that declares callback actions."""
    op.create_table(
        "participant_completions",
        sa.Column("key", sa.String(400), nullable=False),
        sa.Column("saga_id", sa.String(100), nullable=False),
        sa.Column("step", sa.String(200), nullable=False),
        sa.Column("callback_url", sa.String(2000), nullable=False),
        sa.Column("token", sa.String(128), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=True),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("tries", sa.Integer, nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("http_status", sa.Integer, nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_participant_completions"),
    )
    op.create_index(
        "ix_participant_completions_status_next_at",
        "participant_completions",
        ["status", "next_at"],
    )


def drop_completion_tables(op: Operations) -> None:
    """Undo :func:`create_completion_tables`."""
    op.drop_index("ix_participant_completions_status_next_at", table_name="participant_completions")
    op.drop_table("participant_completions")
