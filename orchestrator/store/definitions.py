"""Definitions: immutable and versioned. Registering identical content is a no-op."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.definitions import SagaDefinition
from orchestrator.store.engine import single_statements
from orchestrator.store.schema import definitions_table

definitions = definitions_table


@dataclass(frozen=True)
class StoredDefinition:
    name: str
    version: int
    definition: SagaDefinition
    created_at: datetime


def _from_row(row: sa.Row[Any]) -> StoredDefinition:
    return StoredDefinition(
        name=row.name,
        version=row.version,
        definition=SagaDefinition.model_validate(row.spec),
        created_at=row.created_at,
    )


class DefinitionStore:
    """Definitions by name and version, cached: a stored version never changes."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.single = single_statements(engine)
        self._cache: dict[tuple[str, int], StoredDefinition] = {}
        self._newest_seen: dict[str, StoredDefinition] = {}

    async def register(
        self, definition: SagaDefinition, now: datetime
    ) -> tuple[StoredDefinition, bool]:
        """Store ``definition`` as the next version unless the latest is identical.

        Returns ``(stored, created)``. Two registrations racing for the same
        version number are resolved by the primary key: the loser re-reads.
        """
        fingerprint = definition.fingerprint()
        for _ in range(5):
            latest = await self.get(definition.name)
            if latest is not None and latest.definition.fingerprint() == fingerprint:
                return latest, False
            version = 1 if latest is None else latest.version + 1
            try:
                async with self.engine.begin() as conn:
                    await conn.execute(
                        sa.insert(definitions),
                        [
                            {
                                "name": definition.name,
                                "version": version,
                                "spec": definition.model_dump(mode="json"),
                                "fingerprint": fingerprint,
                                "created_at": now,
                            }
                        ],
                    )
            except IntegrityError:
                continue
            stored = StoredDefinition(definition.name, version, definition, now)
            self._remember(stored)
            return stored, True
        raise RuntimeError("could not register the definition after 5 concurrent attempts")

    async def get(self, name: str, version: int | None = None) -> StoredDefinition | None:
        """A definition version, or the latest when ``version`` is None."""
        if version is None:
            # Which version is the latest must be asked every time (another
            # process may have registered one); its parsed body is cached.
            latest = sa.select(sa.func.max(definitions.c.version)).where(definitions.c.name == name)
            async with self.single.connect() as conn:
                version = (await conn.execute(latest)).scalar()
            if version is None:
                return None
        if (name, version) in self._cache:
            return self._cache[(name, version)]
        query = sa.select(definitions).where(
            definitions.c.name == name, definitions.c.version == version
        )
        async with self.single.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        stored = _from_row(row)
        self._remember(stored)
        return stored

    def newest_seen(self, name: str) -> StoredDefinition | None:
        """The newest version of ``name`` this process has seen, without asking the database.

        Another process may have registered a newer one since: a saga started
        on it must be created with ``newest_only`` (which catches that).
        """
        return self._newest_seen.get(name)

    def _remember(self, stored: StoredDefinition) -> None:
        self._cache[(stored.name, stored.version)] = stored
        seen = self._newest_seen.get(stored.name)
        if seen is None or seen.version < stored.version:
            self._newest_seen[stored.name] = stored

    async def latest_versions(self) -> list[tuple[str, int, datetime]]:
        latest = (
            sa.select(definitions.c.name, sa.func.max(definitions.c.version).label("version"))
            .group_by(definitions.c.name)
            .subquery()
        )
        query = (
            sa.select(definitions.c.name, definitions.c.version, definitions.c.created_at)
            .join(
                latest,
                sa.and_(
                    definitions.c.name == latest.c.name, definitions.c.version == latest.c.version
                ),
            )
            .order_by(definitions.c.name)
        )
        async with self.engine.connect() as conn:
            return [(r.name, r.version, r.created_at) for r in await conn.execute(query)]
