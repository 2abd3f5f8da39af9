"""OpenTelemetry export is off by default, costs no import, and fails clearly without its extra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from orchestrator.settings import Settings

# Builds a whole process (API and worker) and reports which modules of the
# ``otel`` extra got imported on the way (FastAPI itself imports the API package).
_BUILD = """
import sys
from orchestrator.api.app import create_app
from orchestrator.cli import main
from orchestrator.settings import Settings
create_app(Settings(database_url=sys.argv[1]))
extra = ("opentelemetry.sdk", "opentelemetry.exporter", "opentelemetry.proto")
print(sorted(m for m in sys.modules if m.startswith(extra)))
"""

# Runs ``saga serve`` as if the ``otel`` extra were not installed (the API
# package stays: FastAPI depends on it).
_SERVE_WITHOUT_OTEL = """
import sys
sys.modules["opentelemetry.sdk"] = None
sys.modules["opentelemetry.exporter"] = None
from orchestrator.cli import main
main(["serve", "--no-migrate"])
"""


def test_off_by_default_and_nothing_imported(tmp_path: Path) -> None:
    assert Settings().otel_endpoint is None
    url = f"sqlite+aiosqlite:///{tmp_path}/o.db"
    out = subprocess.run(
        [sys.executable, "-c", _BUILD, url], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_enabled_without_the_extra_stops_at_start(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "SAGA_OTEL_ENDPOINT": "http://127.0.0.1:4318",
        "SAGA_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/o.db",
    }
    out = subprocess.run(
        [sys.executable, "-c", _SERVE_WITHOUT_OTEL],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 1, out.stderr
    assert "SAGA_OTEL_ENDPOINT is set but OpenTelemetry is not installed" in out.stderr
    assert "pip install 'saga-orchestrator[otel]'" in out.stderr
    assert "Traceback" not in out.stderr


def test_endpoint_must_be_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGA_OTEL_ENDPOINT", "http://collector:4318/")
    assert Settings().otel_endpoint == "http://collector:4318"
    monkeypatch.setenv("SAGA_OTEL_ENDPOINT", "collector:4318")
    with pytest.raises(ValidationError):
        Settings()
