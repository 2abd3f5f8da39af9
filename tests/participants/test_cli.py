"""``python -m participants.<service>``: migrate, seed and serve as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.servers import free_port, wait_http

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_a_service_runs_as_a_process(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PARTICIPANT_DATABASE_URL": f"sqlite:///{tmp_path}/payments.db",
        "PARTICIPANT_ENABLE_FAULTS": "true",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "participants.payments",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", timeout_s=20)
        accounts = httpx.get(f"http://127.0.0.1:{port}/accounts").json()
        assert [a["id"] for a in accounts] == ["alice", "bob", "carol"]
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert b"FAULT INJECTION ENABLED" in output
