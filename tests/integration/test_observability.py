"""Metrics with exact values (parsed by Prometheus' own parser), trace context, log lines."""

from __future__ import annotations

import asyncio
import logging
import re

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.harness.postgres import NOT_DURABLE, private_cluster, server_binaries_installed
from orchestrator.store import migrate
from tests.integration.test_saga_flow import register, start
from tests.support.orchestrator import fast_settings, running_orchestrator, step, wait_final
from tests.support.participant import ScriptedParticipant

pytestmark = pytest.mark.postgres


async def scrape(api: httpx.AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await api.get("/metrics")
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


async def test_known_sagas_give_exact_metrics(
    api: httpx.AsyncClient, participant: ScriptedParticipant
) -> None:
    await register(api, "ok", [step("a"), step("b"), step("c")])
    await register(api, "no", [step("a"), step("b"), step("r")])
    participant.steady["r"] = 409
    participant.script["b"] = [503]  # one retry of b, in the first saga that calls it

    first = await wait_final(api, await start(api, "ok"))
    second = await wait_final(api, await start(api, "ok"))
    refused = await wait_final(api, await start(api, "no"))
    assert [first["status"], second["status"], refused["status"]] == [
        "completed",
        "completed",
        "compensated",
    ]
    m = await scrape(api)

    assert value(m, "saga_started_total", definition="ok") == 2
    assert value(m, "saga_started_total", definition="no") == 1
    assert value(m, "saga_finished_total", definition="ok", status="completed") == 2
    assert value(m, "saga_finished_total", definition="no", status="compensated") == 1
    assert value(m, "saga_finished_total", status="failed") == 0
    assert value(m, "saga_duration_seconds_count") == 3
    # Calls: ok -> a, b (503 then 200), c, then a, b, c; no -> a, b, r (409), undo b, undo a.
    calls = "saga_step_calls_total"
    assert value(m, calls, definition="ok", phase="action", outcome="succeeded") == 6
    assert value(m, calls, definition="ok", step="b", outcome="transient") == 1
    assert value(m, calls, definition="no", step="r", outcome="rejected") == 1
    assert value(m, calls, definition="no", phase="compensation", outcome="succeeded") == 2
    assert value(m, calls, participant="p") == 12
    assert value(m, "saga_step_retries_total", definition="ok", step="b", phase="action") == 1
    assert value(m, "saga_step_retries_total") == 1
    assert value(m, "saga_compensations_total", definition="no", step="a") == 1
    assert value(m, "saga_compensations_total", definition="no", step="b") == 1
    assert value(m, "saga_step_call_duration_seconds_count") == 12
    assert value(m, "saga_version_conflicts_total") == 0
    assert value(m, "saga_lease_takeovers_total") == 0
    for status in ("running", "compensating", "failed"):
        assert value(m, "saga_sagas", status=status) == 0
    assert value(m, "saga_oldest_due_seconds") == 0
    assert value(m, "saga_worker_held") == 0
    assert value(m, "saga_database_up") == 1
    # Sagas started through this process's API go straight to its worker:
    # created leased, driven at once, never claimed from the table.
    assert value(m, "saga_claimed_total") == 0


async def test_backlog_and_parked_gauges(
    api: httpx.AsyncClient, participant: ScriptedParticipant
) -> None:
    participant.steady["b"] = 409
    await register(api, "parks", [step("a"), step("b")], on_failure="park")
    saga = await wait_final(api, await start(api, "parks"))
    assert saga["status"] == "failed"
    m = await scrape(api)
    assert value(m, "saga_sagas", status="failed") == 1
    assert value(m, "saga_finished_total", definition="parks", status="failed") == 1


@pytest.mark.slow
@pytest.mark.skipif(not server_binaries_installed(), reason="needs the PostgreSQL server binaries")
async def test_database_up_follows_the_database(participant_url: str) -> None:
    with private_cluster(settings=NOT_DURABLE) as cluster:
        url = cluster.url("postgres")
        await asyncio.to_thread(migrate.upgrade, url)
        async with running_orchestrator(fast_settings(url, {"p": [participant_url]})) as api:
            assert value(await scrape(api), "saga_database_up") == 1
            await asyncio.to_thread(cluster.stop)
            assert value(await scrape(api), "saga_database_up") == 0
            await asyncio.to_thread(cluster.start)
            # The pool may hand out a connection the restart killed: a later scrape is fine.
            seen = [value(await scrape(api), "saga_database_up")]
            while seen[-1] != 1 and len(seen) < 20:
                await asyncio.sleep(0.2)
                seen.append(value(await scrape(api), "saga_database_up"))
            assert seen[-1] == 1, seen


async def test_one_trace_id_across_all_steps(
    api: httpx.AsyncClient, participant: ScriptedParticipant
) -> None:
    participant.steady["c"] = 409  # compensations too
    await register(api, "traced", [step("a"), step("b"), step("c")])
    caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    response = await api.post(
        "/v1/sagas", json={"definition": "traced"}, headers={"traceparent": caller}
    )
    saga = await wait_final(api, response.json()["id"])
    assert saga["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = [r["traceparent"] for r in participant.requests]
    assert len(headers) == 5
    parsed = [re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-01", h) for h in headers]
    assert all(parsed)
    assert {p.group(1) for p in parsed if p} == {saga["trace_id"]}
    assert len({p.group(2) for p in parsed if p}) == 5  # a span per call

    fresh = await wait_final(
        api, (await api.post("/v1/sagas", json={"definition": "traced"})).json()["id"]
    )
    assert re.fullmatch(r"[0-9a-f]{32}", fresh["trace_id"])
    assert fresh["trace_id"] != saga["trace_id"]


async def test_a_log_line_per_call_and_transition(
    api: httpx.AsyncClient, participant: ScriptedParticipant, caplog: pytest.LogCaptureFixture
) -> None:
    participant.steady["b"] = 409
    await register(api, "logged", [step("a"), step("b")])
    with caplog.at_level(logging.INFO, logger="orchestrator"):
        saga = await wait_final(api, await start(api, "logged"))
    mine = [r for r in caplog.records if getattr(r, "fields", {}).get("saga_id") == saga["id"]]
    calls = [r.fields for r in mine if r.name == "orchestrator.calls"]  # type: ignore[attr-defined]
    assert [(c["step"], c["phase"], c["outcome"]) for c in calls] == [
        ("a", "action", "succeeded"),
        ("b", "action", "rejected"),
        ("a", "compensation", "succeeded"),
    ]
    assert all(
        c["definition"] == "logged" and c["attempt"] == 1 and c["duration_ms"] >= 0 for c in calls
    )
    moves = [
        (r.fields["from"], r.fields["to"])
        for r in mine  # type: ignore[attr-defined]
        if r.name == "orchestrator.transitions"
    ]
    assert moves == [("running", "compensating"), ("compensating", "compensated")]


async def test_saga_top_shows_counts(
    api: httpx.AsyncClient, participant: ScriptedParticipant
) -> None:
    import asyncio
    import sys
    from pathlib import Path

    await register(api, "top", [step("a")])
    await wait_final(api, await start(api, "top"))
    saga = str(Path(sys.executable).with_name("saga"))
    process = await asyncio.create_subprocess_exec(
        saga,
        "top",
        "--once",
        "--url",
        str(api.base_url).rstrip("/"),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    text = out.decode()
    assert process.returncode == 0
    assert re.search(r"^completed\s+1\b", text, re.M), text
    assert re.search(r"^running\s+0\b", text, re.M), text
