"""The orchestrator's tables (typed SQLAlchemy 2 models). Created only by Alembic migrations.

The whole machine state of a saga lives in ``sagas.state`` (JSON) and is guarded
by ``sagas.version``: a transition is one conditional UPDATE of one row plus
its history rows, in one commit (docs/decisions.md, "one row per saga").
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite stores naive text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType, Any: JSONType}


class DefinitionRow(Base):
    __tablename__ = "definitions"

    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    version: Mapped[int] = mapped_column(primary_key=True)
    spec: Mapped[dict[str, Any]]
    fingerprint: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime]


class SagaRow(Base):
    __tablename__ = "sagas"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid(), primary_key=True)
    definition_name: Mapped[str] = mapped_column(sa.String(64))
    definition_version: Mapped[int]
    status: Mapped[str] = mapped_column(sa.String(16))
    input: Mapped[Any]
    state: Mapped[dict[str, Any]]
    #: Optimistic concurrency: every write is ``WHERE version = :read_version``.
    version: Mapped[int]
    #: When a worker should next look at the saga; NULL when nothing is due
    #: (finished, or waiting for an operator). While a worker holds the lease it
    #: equals ``lease_expires_at``, so a saga whose worker died becomes due again.
    wake_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(sa.String(64))
    lease_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    #: W3C trace id shared by every call of the saga.
    trace_id: Mapped[str | None] = mapped_column(sa.String(32))

    __table_args__ = (
        sa.Index(
            "ix_sagas_due",
            "wake_at",
            postgresql_where=sa.text("wake_at IS NOT NULL"),
            sqlite_where=sa.text("wake_at IS NOT NULL"),
        ),
        sa.Index("ix_sagas_created", "created_at", "id"),
        sa.Index("ix_sagas_status_created", "status", "created_at"),
        sa.Index("ix_sagas_definition_created", "definition_name", "created_at"),
        # Retention: finished and parked sagas by age. Partial, so the writes of
        # sagas in flight (``wake_at`` set) never touch it.
        sa.Index(
            "ix_sagas_resting",
            "status",
            "updated_at",
            postgresql_where=sa.text("wake_at IS NULL"),
            sqlite_where=sa.text("wake_at IS NULL"),
        ),
    )


class SagaEventRow(Base):
    """The saga's history: each call, attempt, outcome and transition."""

    __tablename__ = "saga_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    saga_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid(), sa.ForeignKey("sagas.id", ondelete="CASCADE")
    )
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(sa.String(16))
    step: Mapped[str | None] = mapped_column(sa.String(64))
    phase: Mapped[str | None] = mapped_column(sa.String(16))
    attempt: Mapped[int | None]
    outcome: Mapped[str | None] = mapped_column(sa.String(16))
    detail: Mapped[Any | None]

    __table_args__ = (sa.Index("ix_saga_events_saga", "saga_id", "id"),)


class StartKeyRow(Base):
    """``Idempotency-Key`` of ``POST /v1/sagas``: the same key starts one saga only."""

    __tablename__ = "saga_start_keys"

    key: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    saga_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid(), sa.ForeignKey("sagas.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime]

    # Deleting a saga cascades here by saga_id: without it, each one is a scan.
    __table_args__ = (sa.Index("ix_saga_start_keys_saga", "saga_id"),)


class FaultRuleRow(Base):
    """A transport fault rule; in the database so that every worker applies it."""

    __tablename__ = "fault_rules"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    definition: Mapped[str | None] = mapped_column(sa.String(64))
    participant: Mapped[str | None] = mapped_column(sa.String(64))
    step: Mapped[str | None] = mapped_column(sa.String(64))
    phase: Mapped[str | None] = mapped_column(sa.String(16))
    mode: Mapped[str] = mapped_column(sa.String(16))
    status: Mapped[int | None]
    delay_ms: Mapped[int | None]
    probability: Mapped[float]
    count: Mapped[int | None]
    seed: Mapped[int | None]
    fired: Mapped[int]
    created_at: Mapped[datetime]


metadata = Base.metadata

#: The tables for Core statements (typed as tables, which ``__table__`` is not).
definitions_table = cast(sa.Table, DefinitionRow.__table__)
sagas_table = cast(sa.Table, SagaRow.__table__)
events_table = cast(sa.Table, SagaEventRow.__table__)
start_keys_table = cast(sa.Table, StartKeyRow.__table__)
fault_rules_table = cast(sa.Table, FaultRuleRow.__table__)


class SecretRow(Base):
    """Process-wide secrets every worker must share (e.g. the callback-token key)."""

    __tablename__ = "orchestrator_secrets"

    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    value: Mapped[str] = mapped_column(sa.String(128))
    created_at: Mapped[datetime]


secrets_table = cast(sa.Table, SecretRow.__table__)
