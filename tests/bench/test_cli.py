"""``saga bench`` on the command line: documented options, refused ones, a tiny real run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import main

SAGA = Path(sys.executable).with_name("saga")


def test_help_documents_every_option() -> None:
    result = CliRunner().invoke(main, ["bench", "--help"])
    assert result.exit_code == 0
    for option in (
        "--sagas",
        "--in-flight",
        "--runs",
        "--modes",
        "--scaling",
        "--workers",
        "--memory",
        "--memory-sagas",
        "--json",
        "--database-url",
        "--broker",
    ):
        assert option in result.output, option


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--modes", "plain,temporal"], "unknown mode(s) temporal"),
        (["--scaling", "1,two"], "comma-separated list of integers"),
        (["--in-flight", "0"], "at least 1"),
        (["--memory", "--memory-sagas", "5000,500"], "two increasing counts"),
        (["--broker", "http://127.0.0.1:5672"], "amqp:// or amqps:// URL"),
    ],
)
def test_impossible_options_are_refused_before_anything_starts(
    args: list[str], message: str
) -> None:
    result = CliRunner().invoke(main, ["bench", *args])
    assert result.exit_code == 2
    assert message in result.output


@pytest.mark.e2e
@pytest.mark.postgres
@pytest.mark.slow
def test_a_tiny_benchmark_reports_every_figure(tmp_path: Path) -> None:
    json_path = tmp_path / "out" / "bench.json"
    done = subprocess.run(
        [
            str(SAGA),
            "bench",
            "--sagas",
            "20",
            "--in-flight",
            "1",
            "--in-flight",
            "5",
            "--runs",
            "1",
            "--modes",
            "plain,orchestrator",
            "--workdir",
            str(tmp_path / "work"),
            "--json",
            str(json_path),
        ],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(json_path.read_text())
    assert "TARGET" in done.stdout
    assert f"JSON: {json_path}" in done.stdout
    rows = {(r["mode"], r["in_flight"]): r for r in report["results"]}
    assert set(rows) == {(m, n) for m in ("plain", "orchestrator") for n in (1, 5)}
    for row in rows.values():
        assert row["sagas"] == row["completed"] == 20
        assert row["sagas_per_s"] > 0
        assert 0 < row["p50_ms"] <= row["p99_ms"]
        assert row["cpu_ms_per_saga"] > 0
        # One transaction per participant call, nothing else on its database.
        assert row["participant_db_commits_per_saga"] == pytest.approx(3.0, abs=0.5)
    for n in (1, 5):
        orchestrated = rows[("orchestrator", n)]
        assert orchestrated["state_db_commits_per_saga"] > 0
        assert orchestrated["own_commits_per_saga"] > 0
        assert orchestrated["p50_ms"] <= orchestrated["seen_p50_ms"]
        assert rows[("plain", n)]["state_db_commits_per_saga"] is None
    assert {r["versus"] for r in report["ratios"]} == {"plain"}
    assert all(r["sagas_per_s"] > 0 for r in report["ratios"])
    names = [t["target"] for t in report["targets"]]
    assert "throughput orchestrator/plain at 5 in flight" in names
    assert "p50 added to the plain chain at 1 in flight" in names
    assert all(t["check"] == "met" or t["check"].startswith("missed by") for t in report["targets"])
