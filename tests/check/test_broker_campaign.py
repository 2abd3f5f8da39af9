"""A campaign over the broker: services reached through a private RabbitMQ node.

``--transport mixed`` (payments and inventory through the broker, orders and
shipping over HTTP), with faults of every mode, a worker kill, consumers
killed mid-command and the broker itself killed and restarted: nothing lost
or applied twice, and the broker's own record of every command shows each
retry carrying the same key.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from orchestrator.check import CampaignConfig, run_campaign
from orchestrator.check.report import render
from orchestrator.check.schedule import SERVICE_MODES, TRANSPORT_MODES
from orchestrator.harness.rabbitmq import rabbitmq_installed

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.slow]


@pytest.mark.skipif(not rabbitmq_installed(), reason="the RabbitMQ server is not installed")
async def test_a_mixed_campaign_survives_broker_and_consumer_deaths(tmp_path: Path) -> None:
    config = CampaignConfig(
        sagas=100,
        concurrency=15,
        fault_rate=0.25,
        workers=2,
        kills=1,
        zombies=0,
        transport="mixed",
        broker_crashes=1,
        consumer_kills=2,
        definitions=("order", "order_parallel", "order_async"),
        seed=4,
        workdir=tmp_path / "campaign",
        progress=False,
    )
    log = io.StringIO()
    report = await run_campaign(config, log)
    summary = render(report)
    print(summary)
    assert report["verdict"] == "pass", summary + "\n" + log.getvalue()[-3000:]
    assert report["violations"] == 0
    assert report["blind_spots"] == []
    assert sum(report["sagas"]["by_status"].values()) == 100
    chaos = report["chaos"]
    assert len(chaos["broker_crashes"]) == 1
    assert {k["participant"] for k in chaos["consumer_kills"]} <= {"payments", "inventory"}
    assert any(k["commands_unanswered"] for k in chaos["consumer_kills"])
    wire = report["wire"]
    assert 0 < wire["broker_commands"] < wire["requests"]  # both transports carried calls
    assert wire["keys_sent_more_than_once"] > 0
    assert set(report["faults"]["fired"]["transport"]) == set(TRANSPORT_MODES)
    assert set(report["faults"]["fired"]["service"]) == set(SERVICE_MODES)
