"""Transport fault rules, stored so that every worker sees and counts them alike."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.fault_rules import FaultRule
from orchestrator.store.schema import fault_rules_table

rules = fault_rules_table


def _rule(row: sa.Row[Any]) -> FaultRule:
    return FaultRule(**{c.name: row._mapping[c.name] for c in rules.columns})


class FaultStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def add(self, values: dict[str, Any], now: datetime) -> FaultRule:
        row = {**values, "fired": 0, "created_at": now}
        async with self.engine.begin() as conn:
            created = (await conn.execute(sa.insert(rules).values(**row).returning(*rules.c))).one()
        return _rule(created)

    async def all(self) -> list[FaultRule]:
        async with self.engine.connect() as conn:
            return [_rule(r) for r in await conn.execute(sa.select(rules).order_by(rules.c.id))]

    async def delete(self, rule_id: int) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(sa.delete(rules).where(rules.c.id == rule_id))
        return bool(result.rowcount)

    async def clear(self) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(sa.delete(rules))
        return int(result.rowcount)

    async def fire(self, rule_id: int) -> bool:
        """Count one firing; ``False`` when the rule's ``count`` is used up (or it is gone).

        The check and the increment are one statement, so ``count`` holds across
        all workers.
        """
        stmt = (
            sa.update(rules)
            .where(rules.c.id == rule_id)
            .where(sa.or_(rules.c.count.is_(None), rules.c.fired < rules.c.count))
            .values(fired=rules.c.fired + 1)
        )
        async with self.engine.begin() as conn:
            result = await conn.execute(stmt)
        return result.rowcount == 1
