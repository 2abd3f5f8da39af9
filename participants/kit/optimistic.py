"""Optimistic updates of versioned business rows.

Business rows (accounts, stock items, orders) carry an integer ``version``. An
update reads the row, computes the change, and writes it with
``UPDATE ... WHERE id = :id AND version = :v``; a row count of 0 means someone
else wrote first, so the helper reads again and recomputes. On PostgreSQL at
READ COMMITTED each statement sees the latest committed data, so retrying
inside the same transaction is sound (and keeps the idempotency key and the
business change in one commit). Conflicts are reported to a callback so they
show up in the service's metrics.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from participants.kit.errors import Rejected, Unavailable

Change = Callable[[Mapping[str, Any]], Mapping[str, Any] | None]

DEFAULT_ATTEMPTS = 20
_BACKOFF_S = 0.002


class RowNotFound(Rejected):
    """The row to update does not exist: a business "no" answered 404.

    The code reads ``<entity>_not_found``, the entity being ``table.info["entity"]``
    when the table names one (``account``), else the table's name.
    """

    def __init__(self, table: sa.Table, row_id: object) -> None:
        entity = table.info.get("entity", table.name)
        super().__init__(f"{entity}_not_found", f"no {entity} {row_id!r}", status=404)


class VersionConflict(Unavailable):
    """Every attempt lost its race; answered 503 so the caller retries later."""

    def __init__(self, table: sa.Table, row_id: object, attempts: int) -> None:
        super().__init__(
            "version_conflict",
            f"{table.name} {row_id!r} changed under {attempts} attempts in a row; retry",
        )


async def update_versioned(
    conn: AsyncConnection,
    table: sa.Table,
    row_id: object,
    change: Change,
    *,
    max_attempts: int = DEFAULT_ATTEMPTS,
    on_conflict: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Apply ``change`` to the row ``row_id`` of ``table`` and return the row as written.

    ``change`` gets the current row and returns the columns to set (``version``
    is handled here), or ``None``/``{}`` to leave the row alone; it may raise
    :class:`Rejected` to refuse, and may be called more than once, so it must
    not have side effects. The table needs a single-column primary key and an
    integer ``version`` column.
    """
    key_column = _primary_key(table)
    for attempt in range(max_attempts):
        found = await conn.execute(sa.select(table).where(key_column == row_id))
        mapping = found.mappings().first()
        if mapping is None:
            raise RowNotFound(table, row_id)
        row: dict[str, Any] = dict(mapping)
        values = change(row)
        if not values:
            return row
        version = row["version"]
        written = await conn.execute(
            sa.update(table)
            .where(key_column == row_id, table.c.version == version)
            .values({**values, "version": version + 1})
        )
        if written.rowcount == 1:
            return {**row, **values, "version": version + 1}
        if on_conflict is not None:
            on_conflict()
        # A short random pause spreads out writers that lost to the same winner.
        await asyncio.sleep(random.uniform(0, _BACKOFF_S * (attempt + 1)))
    raise VersionConflict(table, row_id, max_attempts)


def _primary_key(table: sa.Table) -> sa.Column[Any]:
    columns = list(table.primary_key.columns)
    if len(columns) != 1 or "version" not in table.c:
        raise TypeError(f"{table.name} needs a one-column primary key and a version column")
    return columns[0]
