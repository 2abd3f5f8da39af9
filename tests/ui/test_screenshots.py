"""The screenshots in docs/screenshots/, taken in Chromium (``pytest -m docs tests/ui``).

Deselected by default: it rewrites files of the repository.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from orchestrator.check.config import definition
from tests.support.orchestrator import (
    cloned_database,
    fast_settings,
    running_orchestrator,
    step,
    wait_final,
)
from tests.support.participant import ScriptedParticipant
from tests.ui.helpers import register, start, without_undo
from tests.ui.test_browser import browser, page

__all__ = ["browser", "page"]

pytestmark = [
    pytest.mark.docs,
    pytest.mark.postgres,
    pytest.mark.skipif(
        shutil.which("chromium") is None, reason="Debian's chromium is not installed"
    ),
]
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


async def test_take_the_screenshots(
    template_db: str, participant: ScriptedParticipant, participant_url: str, page: object
) -> None:
    # Every name the built-in definitions use, all played by the scripted participant.
    names = ("p", "orders", "inventory", "payments", "shipping")
    with cloned_database(template_db) as url:
        settings = fast_settings(url, {name: [participant_url] for name in names})
        async with running_orchestrator(settings) as ui:
            await _take(ui, participant, page)


async def _take(ui: httpx.AsyncClient, participant: ScriptedParticipant, page: object) -> None:
    participant.script["reserve"] = [503, 503]
    participant.steady["charge"] = 409
    retry = {"max_attempts": 4, "initial_backoff_ms": 200, "max_backoff_ms": 800}
    pivot = {**without_undo("charge", "pivot"), "retry": retry}
    steps = [step("create_order", retry=retry), step("reserve", retry=retry), pivot]
    await register(ui, "order_demo", steps)
    compensated = await start(ui, "order_demo", {"account": "alice", "amount": 30})
    await wait_final(ui, compensated, timeout_s=60)
    participant.steady["charge"] = 200
    for n in range(6):
        await wait_final(ui, await start(ui, "order_demo", {"account": f"a{n}", "amount": 5}))
    participant.steady["ship"] = 503
    parks = [step("ship", retry={"max_attempts": 2, "initial_backoff_ms": 50})]
    await register(ui, "shipping_only", parks, on_failure="park")
    await wait_final(ui, await start(ui, "shipping_only", {"order": 7}))
    shown = definition("order_async")
    await register(ui, shown["name"], shown["steps"])
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.goto(f"{ui.base_url}/ui/sagas")  # type: ignore[attr-defined]
    await page.screenshot(path=str(SHOTS / "sagas.png"), full_page=True)  # type: ignore[attr-defined]
    await page.goto(f"{ui.base_url}/ui/sagas/{compensated}")  # type: ignore[attr-defined]
    await page.screenshot(path=str(SHOTS / "saga.png"), full_page=True)  # type: ignore[attr-defined]
    await page.goto(f"{ui.base_url}/ui/definitions?name=order_async")  # type: ignore[attr-defined]
    await page.screenshot(path=str(SHOTS / "definition.png"), full_page=True)  # type: ignore[attr-defined]
