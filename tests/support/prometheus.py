"""A real Prometheus server for tests: Debian's package, on a free port, with a data dir of its own.

``unavailable_reason`` installs the package when ``prometheus`` or ``promtool``
is missing (through ``scripts/install-prometheus``, as ``scripts/test`` does)
and says why it cannot be used when that fails, so a test can skip with it.
:class:`PrometheusServer` runs the binary as a harness
:class:`~orchestrator.harness.processes.ManagedProcess`; its scrape targets
come from ``file_sd`` files the test rewrites as its processes move to new
ports, and it answers through its HTTP API (``/api/v1/query``,
``/api/v1/alerts``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import yaml

from orchestrator.harness.processes import ManagedProcess, clean_environment

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "scripts" / "install-prometheus"


def unavailable_reason() -> str | None:
    """None when ``prometheus`` and ``promtool`` are on PATH (installed if need be), else why."""
    if shutil.which("prometheus") and shutil.which("promtool"):
        return None
    try:
        done = subprocess.run(
            [str(INSTALL)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"scripts/install-prometheus could not run: {exc}"
    if done.returncode == 0 and shutil.which("prometheus") and shutil.which("promtool"):
        return None
    output = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
    return f"prometheus cannot be installed here (scripts/install-prometheus): {output}"


class PrometheusServer:
    """One Prometheus process configured by ``config``; ``{targets}`` files under its workdir."""

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        self.workdir = workdir
        self.targets_dir = workdir / "targets"
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        config_path = workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self._written: dict[str, list[str]] = {}
        self.process = ManagedProcess(
            "prometheus",
            [
                str(shutil.which("prometheus") or "prometheus"),
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                "--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            clean_environment(),
            workdir,
        )
        self._http = httpx.AsyncClient(timeout=10)

    def targets_file(self, job: str) -> Path:
        """The ``file_sd`` file of ``job`` (for the configuration)."""
        return self.targets_dir / f"{job}.json"

    def set_targets(self, job: str, targets: list[str]) -> None:
        """Scrape ``targets`` (``host:port``) for ``job`` from now on; no write if unchanged."""
        if self._written.get(job) == targets:
            return
        path = self.targets_file(job)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps([{"targets": targets}]))
        os.replace(temporary, path)  # Prometheus never reads a half-written file
        self._written[job] = list(targets)

    async def start(self) -> None:
        """Start the server and wait until it is ready to serve queries."""
        self.process.start()
        await self.process.wait_ready("/-/ready", timeout_s=60)

    async def _get(self, path: str, **params: str) -> Any:
        response = await self._http.get(f"{self.process.url}{path}", params=params)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector ``expr`` evaluates to now (``/api/v1/query``)."""
        data = await self._get("/api/v1/query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    async def alerts(self) -> list[dict[str, Any]]:
        """Every pending or firing alert (``/api/v1/alerts``)."""
        alerts: list[dict[str, Any]] = (await self._get("/api/v1/alerts"))["alerts"]
        return alerts

    async def stop(self) -> None:
        """Stop the server and close the client."""
        await self.process.stop()
        await self._http.aclose()
