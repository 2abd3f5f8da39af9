"""The orchestrator's database restored from a backup taken while sagas ran.

A ``pg_dump`` is taken mid-run; the run finishes; then the database is
replaced by the dump (the operator's restore: back in time, participants
untouched) and a new ``saga serve`` resumes from it. The sagas the backup
held as running are driven again: their calls go out a second time, under
the same ``Idempotency-Key``, and the participant replays its first answers.
So every saga the backup knew ends as it had ended before the restore, and
no effect is applied twice. Sagas started after the backup are unknown to
the restored orchestrator (404): what docs/operations.md tells an operator
to reconcile.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from orchestrator.harness.processes import wait_until
from tests.e2e.harness import SagaServers, register, start_saga, wait_all_final
from tests.support.orchestrator import step
from tests.support.participant import ScriptedParticipant

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.slow]

DONE_FIRST, HELD = 8, 16
SAGAS = DONE_FIRST + HELD


@dataclass
class GatedParticipant(ScriptedParticipant):
    """Holds every call of ``b`` while ``gate`` is clear; ``waiting`` counts them."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: set[str] = field(default_factory=set)

    async def _handle(self, step: str, phase: str, request: Any) -> Any:
        if step == "b" and phase == "action":
            self.waiting.add(request.headers["X-Saga-Id"])
            await self.gate.wait()
        return await super()._handle(step, phase, request)


@pytest.fixture
def participant() -> GatedParticipant:
    return GatedParticipant()


def _libpq(url: str) -> list[str]:
    """``pg_dump``/``psql`` connection options for a SQLAlchemy URL."""
    parsed = make_url(url)
    return [
        "-h",
        parsed.host or "127.0.0.1",
        "-p",
        str(parsed.port or 5432),
        "-U",
        parsed.username or "postgres",
        "-d",
        str(parsed.database),
    ]


def _restore(url: str, dump: Path) -> None:
    """Empty the database and load ``dump`` into it, as an operator's restore would."""
    parsed = make_url(url)
    admin = [*_libpq(url)[:-2], "-d", "postgres"]
    subprocess.run(
        ["psql", *admin, "-qc", f'DROP DATABASE "{parsed.database}" WITH (FORCE)'], check=True
    )
    subprocess.run(["psql", *admin, "-qc", f'CREATE DATABASE "{parsed.database}"'], check=True)
    subprocess.run(["pg_restore", *_libpq(url), "--no-owner", str(dump)], check=True)


async def test_a_restored_backup_resumes_without_applying_anything_twice(
    saga_servers: SagaServers, participant: ScriptedParticipant, tmp_path: Path
) -> None:
    first = await saga_servers.start()
    dump = tmp_path / "orchestrator.dump"
    async with httpx.AsyncClient(base_url=first.url, timeout=30) as api:
        await register(api, "restore", [step("a"), step("b"), step("c")])
        participant.gate.set()
        done_first = [await start_saga(api, "restore", {"n": n}) for n in range(DONE_FIRST)]
        await wait_all_final(api, done_first, timeout_s=60)
        participant.gate.clear()
        held = [await start_saga(api, "restore", {"n": n}) for n in range(DONE_FIRST, SAGAS)]
        assert await wait_until(lambda: participant.waiting >= set(held), timeout_s=30)
        backup = ["pg_dump", *_libpq(saga_servers.database_url), "-Fc", "-f", str(dump)]
        subprocess.run(backup, check=True)
        participant.gate.set()
        before_backup = done_first + held
        after_backup = [await start_saga(api, "restore", {"n": SAGAS + n}) for n in range(4)]
        ended = await wait_all_final(api, before_backup + after_backup, timeout_s=60)
    await first.stop()
    running_at_backup = held
    applied_before = Counter(participant.applied)

    _restore(saga_servers.database_url, dump)
    second = await saga_servers.start()
    async with httpx.AsyncClient(base_url=second.url, timeout=30) as api:
        resumed = await wait_all_final(api, before_backup, timeout_s=60)
        unknown = [(await api.get(f"/v1/sagas/{i}")).status_code for i in after_backup]

    print(
        f"\n[backup restore] {len(running_at_backup)} of {SAGAS} sagas running at the backup, "
        f"resumed to {Counter(resumed.values())}; {len(after_backup)} started after it: "
        f"{Counter(unknown)}"
    )
    assert resumed == {i: ended[i] for i in before_backup}
    assert Counter(resumed.values()) == Counter({"completed": SAGAS})
    # Nothing applied twice, nothing new applied: the second run only replayed.
    assert participant.applied == applied_before
    assert all(n == 1 for n in participant.applied.values()), participant.applied.most_common(3)
    assert not participant.compensated
    keys = Counter(r["key"] for r in participant.requests)
    again = [i for i in running_at_backup if any(keys[f"{i}:{s}:action"] > 1 for s in "abc")]
    assert again, "no call of a resumed saga went out again after the restore"
    assert unknown == [404] * len(after_backup)
    assert second.problems() == []
