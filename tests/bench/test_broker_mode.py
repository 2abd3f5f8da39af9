"""``saga bench``'s broker mode: the orchestrator calling the participant over RabbitMQ.

Against the machine's broker (skipped when it does not answer); the run
declares a queue of its own there and must leave nothing behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aio_pika
import aiormq
import pytest

from orchestrator.bench.broker import DEFAULT_BROKER
from orchestrator.harness.processes import free_port

SAGA = Path(sys.executable).with_name("saga")
ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


async def _broker_answers() -> bool:
    try:
        connection = await aio_pika.connect(DEFAULT_BROKER, timeout=3)
    except Exception:
        return False
    await connection.close()
    return True


async def _queue_exists(name: str) -> bool:
    async with await aio_pika.connect(DEFAULT_BROKER, timeout=5) as connection:
        channel = await connection.channel()
        try:
            await channel.declare_queue(name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return False
    return True


def _bench(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """``saga bench`` of this checkout (its children too, through ``PYTHONPATH``)."""
    json_path = tmp_path / "bench.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [
            str(SAGA),
            "bench",
            "--runs",
            "1",
            "--workdir",
            str(tmp_path / "work"),
            "--json",
            str(json_path),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return done, json.loads(json_path.read_text())


@pytest.mark.slow
async def test_the_broker_mode_measures_sagas_called_over_amqp(tmp_path: Path) -> None:
    if not await _broker_answers():
        pytest.skip("RabbitMQ does not answer at 127.0.0.1:5672")
    done, report = _bench(tmp_path, "--sagas", "12", "--in-flight", "3", "--modes", "broker")
    assert report["skipped"] == {}
    [row] = report["results"]
    assert (row["mode"], row["in_flight"]) == ("broker", 3)
    assert row["sagas"] == row["completed"] == 12
    assert row["sagas_per_s"] > 0
    assert 0 < row["p50_ms"] <= row["p99_ms"]
    assert row["p50_ms"] <= row["seen_p50_ms"]
    # The calls went over the broker: the participant ran every step once, once per command.
    assert row["participant_db_commits_per_saga"] == pytest.approx(3.0, abs=0.5)
    assert row["state_db_commits_per_saga"] > 0
    assert row["own_commits_per_saga"] > 0
    assert row["cpu_ms_per_saga"] > 0
    assert row["participant_cpu_ms_per_saga"] > 0
    broker = report["run"]["broker"]
    assert broker["url"] == "amqp://guest:***@127.0.0.1:5672/%2F"
    assert broker["queue"] in done.stdout
    assert not await _queue_exists(broker["queue"])
    line = next(x for x in done.stdout.splitlines() if x.startswith("broker "))
    assert "12/12" in line


async def test_without_an_answering_broker_the_mode_is_skipped_with_its_reason(
    tmp_path: Path,
) -> None:
    silent = f"amqp://guest:secret@127.0.0.1:{free_port()}/"
    done, report = _bench(
        tmp_path, "--sagas", "5", "--in-flight", "1", "--modes", "broker", "--broker", silent
    )
    reason = report["skipped"]["broker"]
    assert reason.startswith("broker skipped: cannot connect to the broker at amqp://guest:***@")
    assert reason in done.stdout
    assert "secret" not in done.stdout + done.stderr
    assert report["results"] == []
    assert report["run"]["broker"] is None
