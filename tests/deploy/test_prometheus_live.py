"""The shipped dashboard and alert rules, evaluated by a real Prometheus scraping a real fleet.

Debian's ``prometheus`` (installed on demand; the test skips only when it
cannot be) scrapes a short ``saga check`` campaign (faults, a worker kill, a
database crash) through the shipped ``deploy/prometheus/prometheus.yml``, with
its static targets replaced by the fleet's loopback ports and its intervals by
one second. Then:

1. every PromQL query of the Grafana dashboard must return at least one series;
2. every alert of ``deploy/prometheus/alerts.yml`` must fire, its condition made
   true for real: sagas parked at a step whose participant fails every call
   (a 503 injected through ``/v1/faults``; with the campaign's own faults it
   drives that participant's transient error rate over the threshold), the
   workers stopped while a saga is due, the database cluster stopped. Each
   alert that can be is first shown not firing. Only the rules' ``for:``
   durations are shortened, in a rendered copy; thresholds are as shipped.

Run with ``-rA`` (or ``-s``) to see the queries and alerts evaluated.
"""

from __future__ import annotations

import asyncio
import copy
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from orchestrator.check.campaign import Campaign
from orchestrator.check.config import CampaignConfig, definition
from orchestrator.harness.postgres import server_binaries_installed
from orchestrator.harness.processes import ManagedProcess
from participants.kit.contract import check_participant
from tests.support.prometheus import PrometheusServer, unavailable_reason

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
DASHBOARD = json.loads((ROOT / "deploy/grafana/dashboards/saga-orchestrator.json").read_text())
#: Every rule's ``for:`` in the rendered copy: long enough to be seen pending first.
SHORT_FOR = "2s"
PARKED_SAGAS = 12

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture(scope="module")
def prometheus_installed() -> None:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


def shipped(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / name).read_text())
    return loaded


def dashboard_queries() -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in DASHBOARD["panels"] for t in p["targets"]]


def alert_names() -> list[str]:
    return [r["alert"] for g in shipped("alerts.yml")["groups"] for r in g["rules"] if "alert" in r]


def rules_with_short_for(rules: dict[str, Any]) -> dict[str, Any]:
    """The rules as shipped, every ``for:`` replaced by :data:`SHORT_FOR`."""
    rendered = copy.deepcopy(rules)
    for group in rendered["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = SHORT_FOR
    return rendered


def local_config(
    prometheus: dict[str, Any], rules: Path, targets: Callable[[str], Path]
) -> dict[str, Any]:
    """The shipped configuration on loopback: file_sd targets, 1 s intervals, the rendered rules."""
    config = copy.deepcopy(prometheus)
    config["global"] = {
        **config.get("global", {}),
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "evaluation_interval": "1s",
    }
    config["rule_files"] = [str(rules)]
    for job in config["scrape_configs"]:
        del job["static_configs"]
        job["file_sd_configs"] = [
            {"files": [str(targets(job["job_name"]))], "refresh_interval": "1s"}
        ]
    return config


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *args], capture_output=True, text=True, timeout=60, check=False, cwd=ROOT
    )


def test_promtool_accepts_the_shipped_rules_and_config(prometheus_installed: None) -> None:
    rules = promtool("check", "rules", "deploy/prometheus/alerts.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr
    config = promtool("check", "config", "deploy/prometheus/prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr
    assert f"{len(alert_names())} rules found" in rules.stdout
    print(rules.stdout)


def test_the_rendered_rules_differ_from_the_shipped_only_in_for() -> None:
    original = shipped("alerts.yml")
    rendered = rules_with_short_for(original)
    for group, copied in zip(original["groups"], rendered["groups"], strict=True):
        for rule, twin in zip(group["rules"], copied["rules"], strict=True):
            assert {k: v for k, v in rule.items() if k != "for"} == {
                k: v for k, v in twin.items() if k != "for"
            }
            assert "for" in rule, f"{rule.get('alert')}: a production rule needs a for: duration"


def fleet_targets(campaign: Campaign, static_target: str) -> list[ManagedProcess]:
    """The campaign's processes standing for one target of the shipped configuration."""
    fleet = campaign.fleet
    if fleet is None:
        return []
    host = static_target.split(":")[0]
    if host.startswith("orchestrator"):
        return [p for p in (fleet.api, *fleet.workers) if p is not None]
    return [fleet.participants[host]]


async def keep_targets(prometheus: PrometheusServer, campaign: Campaign) -> None:
    """Point each job at the fleet's current ports (a restarted worker gets a new one)."""
    jobs = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in shipped("prometheus.yml")["scrape_configs"]
    }
    while True:
        for job, statics in jobs.items():
            processes = {p.name: p for t in statics for p in fleet_targets(campaign, t)}
            ports = sorted(p.port for p in processes.values() if p.port)
            prometheus.set_targets(job, [f"127.0.0.1:{port}" for port in ports])
        await asyncio.sleep(0.5)


async def eventually(
    probe: Callable[[], Awaitable[bool]], what: str, timeout_s: float, detail: Callable[[], str]
) -> None:
    deadline = time.monotonic() + timeout_s
    while not await probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout_s:.0f}s: {detail()}")
        await asyncio.sleep(0.5)


async def evaluate_dashboard(prometheus: PrometheusServer) -> None:
    """Every dashboard query returns a series (a scrape that just failed may hide one: retry)."""
    answers: dict[str, list[dict[str, Any]]] = {}
    empty: list[str] = []

    async def all_answer() -> bool:
        empty.clear()
        for _, expr in dashboard_queries():
            if not answers.get(expr):
                answers[expr] = await prometheus.query(expr)
            if not answers[expr]:
                empty.append(expr)
        return not empty

    await eventually(all_answer, "every dashboard query returns a series", 30, lambda: f"{empty}")
    print(f"dashboard queries evaluated ({len(dashboard_queries())}):")
    for title, expr in dashboard_queries():
        values = ", ".join(sample(s) for s in answers[expr][:4])
        print(f"  [{title}] {expr}\n      -> {len(answers[expr])} series: {values}")


def sample(series: dict[str, Any]) -> str:
    labels = ",".join(f"{k}={v}" for k, v in sorted(series["metric"].items()))
    return f"{{{labels}}} {float(series['value'][1]):.3g}"


class Alerts:
    """The alerts Prometheus reports, and every one seen firing while waited for."""

    def __init__(self, prometheus: PrometheusServer) -> None:
        self.prometheus = prometheus
        self.seen: dict[str, list[dict[str, Any]]] = {}
        self.last: list[dict[str, Any]] = []

    async def firing_now(self) -> dict[str, list[dict[str, Any]]]:
        self.last = await self.prometheus.alerts()
        firing: dict[str, list[dict[str, Any]]] = {}
        for alert in self.last:
            if alert["state"] == "firing":
                firing.setdefault(alert["labels"]["alertname"], []).append(alert)
        return firing

    async def assert_quiet(self, names: set[str]) -> None:
        """None of ``names`` fires before its condition is made true."""
        assert not names & set(await self.firing_now()), self.last

    async def wait(self, names: set[str], timeout_s: float) -> None:
        """Until each of ``names`` has been seen firing (from now on)."""
        found: dict[str, list[dict[str, Any]]] = {}

        async def all_fire() -> bool:
            for name, firing in (await self.firing_now()).items():
                if name in names:
                    found[name] = firing
            return names <= set(found)

        def detail() -> str:
            return json.dumps([(a["labels"], a["state"]) for a in self.last])

        await eventually(all_fire, f"{sorted(names)} firing", timeout_s, detail)
        self.seen.update(found)

    async def wait_labelled(self, name: str, label: str, value: str, timeout_s: float) -> None:
        """Until ``name`` is seen firing with ``label`` = ``value``.

        Another instance of the same alert (another participant's) may fire
        first: seeing the alert at all is not seeing this one.
        """

        async def fires() -> bool:
            firing = (await self.firing_now()).get(name, [])
            if any(a["labels"].get(label) == value for a in firing):
                self.seen[name] = firing
                return True
            return False

        def detail() -> str:
            return json.dumps([(a["labels"], a["state"]) for a in self.last])

        await eventually(fires, f"{name} firing for {label}={value}", timeout_s, detail)

    def labels(self, name: str, label: str) -> set[str]:
        return {a["labels"].get(label, "") for a in self.seen.get(name, [])}

    def report(self) -> None:
        print(f"alerts evaluated ({len(alert_names())}), seen firing: {sorted(self.seen)}")
        for name in alert_names():
            for alert in self.seen.get(name, []):
                labels = {k: v for k, v in alert["labels"].items() if k != "alertname"}
                print(f"  {name} {labels} value={alert['value']} active since {alert['activeAt']}")
                print(f"      {alert['annotations'].get('summary', '')}")
            if name not in self.seen:
                print(f"  {name}: NOT seen firing")


async def start_sagas(
    api: httpx.AsyncClient, name: str, saga_input: dict[str, Any], n: int
) -> list[str]:
    ids = []
    for _ in range(n):
        response = await api.post("/v1/sagas", json={"definition": name, "input": saga_input})
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


async def park_sagas(api: httpx.AsyncClient, saga_input: dict[str, Any]) -> None:
    """Sagas whose inventory step fails every attempt (503, injected), parked at that step."""
    parks = definition("order")
    parks.update(name="alerts_parked", on_failure="park")
    assert (await api.post("/v1/definitions", json=parks)).status_code in (200, 201)
    rule = {
        "definition": "alerts_parked",
        "participant": "inventory",
        "mode": "error",
        "status": 503,
    }
    assert (await api.post("/v1/faults", json=rule)).status_code == 201
    ids = await start_sagas(api, "alerts_parked", saga_input, PARKED_SAGAS)
    statuses: dict[str, str] = {}

    async def all_parked() -> bool:
        for saga_id in ids:
            statuses[saga_id] = (await api.get(f"/v1/sagas/{saga_id}")).json()["status"]
        return all(s == "failed" for s in statuses.values())

    await eventually(all_parked, "every saga parked", 60, lambda: f"{statuses}")


@pytest.fixture
async def prometheus(tmp_path: Path, prometheus_installed: None) -> AsyncIterator[PrometheusServer]:
    rules = tmp_path / "alerts.yml"
    rules.write_text(yaml.safe_dump(rules_with_short_for(shipped("alerts.yml")), sort_keys=False))
    workdir = tmp_path / "prometheus"
    workdir.mkdir()
    targets_dir = workdir / "targets"
    config = local_config(shipped("prometheus.yml"), rules, lambda job: targets_dir / f"{job}.json")
    server = PrometheusServer(workdir, config)
    for job in config["scrape_configs"]:
        server.set_targets(job["job_name"], [])
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.mark.skipif(not server_binaries_installed(), reason="needs the PostgreSQL server binaries")
async def test_dashboard_queries_and_alerts_against_a_live_fleet(
    prometheus: PrometheusServer, tmp_path: Path
) -> None:
    config = CampaignConfig(
        sagas=100,
        concurrency=25,
        cancel_rate=0.0,  # the client's cancels add nothing any panel or alert needs
        workers=2,
        kills=1,
        zombies=0,
        db_crashes=1,  # database errors on the dashboard; a cluster of its own to stop
        definitions=("order", "order_parallel", "order_async"),
        time_limit_s=300,
        workdir=tmp_path / "fleet",
        progress=False,
    )
    alerts = Alerts(prometheus)
    campaign = Campaign(config, sys.stdout)
    keeper = asyncio.create_task(keep_targets(prometheus, campaign))
    try:
        async with campaign:
            result = await campaign.run()
            print(f"campaign: {result['verdict']}, {result['sagas']}, took {result['timings_s']}")
            fleet, dbs = campaign.fleet, campaign.dbs
            assert fleet is not None
            assert fleet.api is not None
            assert dbs is not None
            cluster = dbs.cluster
            assert cluster is not None
            world = campaign.schedule.world
            saga_input = {
                "account": min(world.balances),
                "sku": min(world.stock),
                "qty": 1,
                "amount": 1,
            }
            # A compensation overtaking its action is a race the campaign may not
            # run into; the kit's contract check plays it on purpose.
            async with httpx.AsyncClient(base_url=fleet.participants["orders"].url) as orders:
                await check_participant(
                    orders, "/orders", saga_input, compensation="/orders/reject"
                )
            await evaluate_dashboard(prometheus)

            async with httpx.AsyncClient(base_url=fleet.api.url, timeout=30) as api:
                await alerts.assert_quiet({"SagasParked", "SagaBacklogOld"})
                await park_sagas(api, saga_input)
                # While the workers still answer scrapes: a stopped worker's counters go
                # stale, and with them the error rate the alert is computed from.
                await alerts.wait_labelled(
                    "ParticipantErrorRateHigh", "participant", "inventory", 90
                )
                # No worker left: the next saga is due and nobody drives it.
                await asyncio.gather(*(w.stop() for w in fleet.workers))
                await start_sagas(api, "order", saga_input, 1)
            await alerts.wait({"SagasParked", "SagaBacklogOld"}, 90)
            assert "inventory" in alerts.labels("ParticipantErrorRateHigh", "participant")

            await alerts.assert_quiet({"OrchestratorDatabaseUnavailable"})
            await asyncio.to_thread(cluster.crash)
            await alerts.wait({"OrchestratorDatabaseUnavailable"}, 60)
            instances = alerts.labels("OrchestratorDatabaseUnavailable", "instance")
            assert f"127.0.0.1:{fleet.api.port}" in instances
    finally:
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)
        alerts.report()
    assert set(alerts.seen) == set(alert_names()), "every shipped alert fired"
