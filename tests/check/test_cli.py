"""``saga check`` on the command line: documented options, refused combinations, a real run."""

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
    result = CliRunner().invoke(main, ["check", "--help"])
    assert result.exit_code == 0
    for option in (
        "--sagas",
        "--concurrency",
        "--fault-rate",
        "--transport-faults",
        "--service-faults",
        "--workers",
        "--kills",
        "--zombies",
        "--db-crash",
        "--seed",
        "--definition",
        "--time-limit",
        "--lease",
        "--database-url",
        "--report",
        "--cancel-rate",
    ):
        assert option in result.output, option
    assert "drop_response" in result.output
    assert "error_after_commit" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--zombies", "1", "--workers", "1"], "--zombies needs"),
        (["--db-crash", "--database-url", "postgresql://u@h/d"], "--db-crash runs its own"),
        (["--transport-faults", "error,explode"], "unknown mode(s) explode"),
        (["--fault-rate", "1.5"], "--fault-rate"),
        (["--definition", "nope"], "nope"),
        (["--broker-crashes", "1"], "need --transport amqp or mixed"),
        (["--transport", "kafka"], "kafka"),
        (["--transport", "amqp", "--consumer-kills", "-1"], "cannot be negative"),
    ],
)
def test_impossible_options_are_refused_before_anything_starts(
    args: list[str], message: str
) -> None:
    result = CliRunner().invoke(main, ["check", *args])
    assert result.exit_code == 2
    assert message in result.output


@pytest.mark.e2e
@pytest.mark.postgres
@pytest.mark.slow
def test_a_small_campaign_from_the_command_line(tmp_path: Path) -> None:
    report_path = tmp_path / "out" / "report.json"
    done = subprocess.run(
        [
            str(SAGA),
            "check",
            "--sagas",
            "12",
            "--concurrency",
            "4",
            "--workers",
            "1",
            "--kills",
            "1",
            "--zombies",
            "0",
            "--fault-rate",
            "0.2",
            "--service-faults",
            "none",
            "--transport-faults",
            "error,drop_response",
            "--definition",
            "order",
            "--seed",
            "5",
            "--workdir",
            str(tmp_path / "work"),
            "--report",
            str(report_path),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        check=False,
    )
    report = json.loads(report_path.read_text())
    assert done.returncode == (0 if report["verdict"] == "pass" else 1), done.stderr[-2000:]
    assert "INVARIANT" in done.stdout
    assert f"report {report_path}" in done.stdout
    assert report["config"]["transport_modes"] == ["error", "drop_response"]
    assert report["config"]["service_modes"] == []
    assert report["sagas"]["total"] == 12
    assert len(report["chaos"]["kills"]) == 1
    assert {i["name"] for i in report["invariants"]} >= {"terminal", "money_conserved"}
    # With so few sagas a mode may not fire; then the campaign says so and fails.
    assert report["verdict"] == ("pass" if not report["blind_spots"] else "fail")
    # The client's history stays in the workdir, named in the report, and re-checks clean.
    history = tmp_path / "work" / "history.jsonl"
    assert report["history"]["path"] == str(history)
    assert report["history"]["ok"], report["history"]["anomalies"]
    again = subprocess.run(
        [str(SAGA), "check-history", str(history)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "history clean" in again.stdout
    assert report["violations"] == 0


def _shown(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(main, ["check", *args, "--show-config"])
    assert result.exit_code == 0, result.output
    shown: dict[str, object] = json.loads(result.output)
    return shown


def test_the_soak_tier_is_the_documented_preset() -> None:
    shown = _shown("--tier", "soak")
    assert shown["tier"] == "soak"
    expected = {"sagas": 10_000, "concurrency": 100, "fault_rate": 0.25, "workers": 4}
    assert {k: shown[k] for k in expected} == expected
    assert (shown["kills"], shown["db_crashes"], shown["zombies"]) == (20, 3, 2)
    assert shown["definitions"] == ["order", "order_async", "order_parallel"]


def test_an_option_typed_beside_a_tier_overrides_only_itself() -> None:
    shown = _shown("--tier", "campaign", "--sagas", "50", "--db-crashes", "2")
    assert (shown["sagas"], shown["db_crashes"]) == (50, 2)
    assert (shown["concurrency"], shown["kills"], shown["fault_rate"]) == (50, 5, 0.25)


def test_without_a_tier_the_defaults_hold_and_db_crash_means_one() -> None:
    shown = _shown("--db-crash")
    assert (shown["tier"], shown["sagas"], shown["db_crashes"]) == (None, 300, 1)


def test_an_unknown_tier_is_refused_naming_the_known_ones() -> None:
    result = CliRunner().invoke(main, ["check", "--tier", "marathon"])
    assert result.exit_code == 2
    assert "marathon" in result.output
    assert "soak" in result.output


def test_a_broker_transport_brings_its_crash_and_consumer_kills_along() -> None:
    result = CliRunner().invoke(main, ["check", "--transport", "mixed", "--show-config"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert (shown["transport"], shown["broker_crashes"], shown["consumer_kills"]) == (
        "mixed",
        1,
        2,
    )
    result = CliRunner().invoke(
        main, ["check", "--tier", "ci", "--transport", "amqp", "--show-config"]
    )
    shown = json.loads(result.output)
    assert (shown["sagas"], shown["broker_crashes"]) == (240, 1)
