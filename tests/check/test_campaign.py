"""Campaigns for real: processes, loopback HTTP, PostgreSQL, faults, kills and a database crash.

- The CI campaign (the ``ci`` tier): a few hundred sagas, faults of every mode at 20%, three
  worker kills, a zombie worker and a database crash; nothing may be lost or
  applied twice, and nothing requested may have failed to happen.
- A double effect and an action after its compensation, planted into a real
  service's database after a clean campaign, are caught by the same
  verification the campaign runs.
"""

from __future__ import annotations

import io
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from orchestrator.check import Campaign, CampaignConfig, run_campaign
from orchestrator.check.history import read_history
from orchestrator.check.history_check import check_history
from orchestrator.check.report import render
from orchestrator.check.schedule import SERVICE_MODES, TRANSPORT_MODES
from orchestrator.check.tiers import TIERS
from participants.kit.schema import effects, utcnow
from participants.payments.schema import accounts, charges, movements

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.slow]


async def test_nothing_is_lost_or_applied_twice_under_faults_kills_and_a_database_crash(
    tmp_path: Path,
) -> None:
    config = TIERS["ci"].config(workdir=tmp_path / "campaign")
    log = io.StringIO()
    report = await run_campaign(config, log)
    summary = render(report)
    print(summary)  # shown with -s, and by pytest when the test fails
    assert report["verdict"] == "pass", summary + "\n" + log.getvalue()[-3000:]
    assert report["violations"] == 0
    assert report["blind_spots"] == []
    assert report["sagas"]["by_status"].keys() <= {"completed", "compensated"}
    assert sum(report["sagas"]["by_status"].values()) == 240
    assert len(report["chaos"]["kills"]) == 3
    assert any(k["calls_in_flight"] for k in report["chaos"]["kills"])
    assert len(report["chaos"]["db_crashes"]) == 1
    assert report["chaos"]["zombies"][0]["stale_writes_rejected"] > 0
    assert set(report["faults"]["fired"]["transport"]) == set(TRANSPORT_MODES)
    assert set(report["faults"]["fired"]["service"]) == set(SERVICE_MODES)
    assert report["wire"]["keys_sent_more_than_once"] > 0  # retries did happen, same key
    # The rules count every firing; a worker records only those it lived to record.
    fired, recorded = (
        report["faults"]["fired"]["transport"],
        report["faults"]["recorded_in_history"],
    )
    assert all(recorded.get(mode, 0) <= n for mode, n in fired.items()), (fired, recorded)
    assert Path(report["run"]["report"]).exists()


async def _execute(url: str, *statements: Any) -> list[Any]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            return [await conn.execute(s) for s in statements]
    finally:
        await engine.dispose()


async def _charge_again(url: str, saga_id: str, account: str, amount: int) -> None:
    """What a participant without idempotency would do with a retried charge."""
    engine = create_async_engine(url, poolclass=NullPool)
    now = utcnow()
    try:
        async with engine.begin() as conn:
            balance = (
                await conn.execute(sa.select(accounts.c.balance).where(accounts.c.id == account))
            ).scalar_one()
            charge_id = str(uuid.uuid4())
            await conn.execute(
                charges.insert().values(
                    id=charge_id,
                    account_id=account,
                    amount=amount,
                    status="captured",
                    saga_id=saga_id,
                    version=1,
                    created_at=now,
                    updated_at=now,
                )
            )
            await conn.execute(
                movements.insert().values(
                    account_id=account,
                    kind="charge",
                    amount=-amount,
                    balance_after=balance - amount,
                    charge_id=charge_id,
                    saga_id=saga_id,
                    created_at=now,
                )
            )
            await conn.execute(
                accounts.update()
                .where(accounts.c.id == account)
                .values(balance=balance - amount, version=accounts.c.version + 1)
            )
    finally:
        await engine.dispose()


async def test_violations_planted_in_real_services_are_caught(tmp_path: Path) -> None:
    config = CampaignConfig(
        sagas=16,
        concurrency=4,
        fault_rate=0.0,
        workers=1,
        kills=0,
        zombies=0,
        definitions=("order",),
        seed=3,
        time_limit_s=120,
        workdir=tmp_path / "planted",
        progress=False,
    )
    async with Campaign(config, io.StringIO()) as campaign:
        report = await campaign.run()
        assert report["verdict"] == "pass", render(report)
        # The client's history is on disk beside the report, and it checks clean.
        history = report["history"]
        assert Path(history["path"]) == campaign.workdir / "history.jsonl"
        assert check_history(read_history(Path(history["path"]))).ok
        assert history["ok"], history["anomalies"]
        assert history["operations"]["cancel"].keys() <= {"ok", "fail"}
        assert sum(history["operations"]["cancel"].values()) == len(campaign.schedule.cancels) == 1
        assert history["operations"]["start"]["ok"] == 16
        assert {r["name"] for r in report["invariants"]} >= {"history_status_path"}
        assert campaign.dbs is not None
        completed = [i for i, status in campaign.driver.final.items() if status == "completed"]
        victim = completed[0]
        plan = next(p for p in campaign.schedule.sagas if campaign.driver.ids[p.number] == victim)

        # 1. A double effect: the same charge applied twice in the payments database.
        await _charge_again(
            campaign.dbs.service_urls["payments"],
            victim,
            str(plan.input["account"]),
            int(plan.input["amount"]),
        )
        _, results = await campaign.verify_now()
        failed = {r.name: r for r in results if not r.ok}
        assert set(failed) == {"money_conserved"}
        messages = [v.message for v in failed["money_conserved"].violations]
        assert any(f"difference -{plan.input['amount']}" in m for m in messages)
        assert victim in {v.saga_id for v in failed["money_conserved"].violations}

        # 2. An action after its compensation: the orders service's ledger shows the
        #    order compensated *before* it was created, yet created.
        orders_url = campaign.dbs.service_urls["orders"]
        (created_at,) = (
            await _execute(
                orders_url,
                sa.select(effects.c.applied_at).where(
                    effects.c.key == f"{victim}:create_order:action"
                ),
            )
        )[0].one()
        await _execute(
            orders_url,
            effects.insert().values(
                key=f"{victim}:create_order:compensation",
                saga_id=victim,
                step="create_order",
                phase="compensation",
                endpoint="/orders/reject",
                status="applied",
                status_code=200,
                response={"undone": False},
                applied_at=created_at - timedelta(seconds=1),
                updated_at=created_at,
            ),
        )
        _, results = await campaign.verify_now()
        failed = {r.name: r for r in results if not r.ok}
        assert {"no_action_after_compensation", "completed_exactly_once"} <= set(failed)
        (late,) = failed["no_action_after_compensation"].violations
        assert late.saga_id == victim
        assert "after its compensation" in late.message


async def test_a_parallel_group_and_a_callback_step_under_faults_and_kills(
    tmp_path: Path,
) -> None:
    config = CampaignConfig(
        sagas=60,
        concurrency=10,
        fault_rate=0.2,
        workers=2,
        kills=1,
        zombies=0,
        definitions=("order_async",),
        seed=11,
        time_limit_s=150,
        workdir=tmp_path / "async",
        progress=False,
    )
    log = io.StringIO()
    report = await run_campaign(config, log)
    summary = render(report)
    print(summary)
    assert report["verdict"] == "pass", summary + "\n" + log.getvalue()[-3000:]
    assert report["violations"] == 0
    assert report["sagas"]["by_status"].keys() <= {"completed", "compensated"}
    assert len(report["chaos"]["kills"]) == 1
    assert set(report["faults"]["fired"]["service"]) == set(SERVICE_MODES)
    callbacks = report["callbacks"]
    # Every completed saga booked its shipment by a completion the service delivered.
    completed = report["sagas"]["by_status"].get("completed", 0)
    assert completed > 0
    assert callbacks["by_participant"] == {"shipping": callbacks["owed"]}
    assert callbacks["by_status"].get("delivered", 0) >= completed
    checked = {i["name"]: i["checked"] for i in report["invariants"]}
    assert checked["callback_completed_once"] >= callbacks["owed"] + completed
