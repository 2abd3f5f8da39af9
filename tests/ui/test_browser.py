"""The web UI in a real browser: Debian's Chromium driven by Playwright.

The orchestrator is served by uvicorn on loopback over PostgreSQL, its
participant is the scripted one (also real HTTP); the browser reaches both
through real sockets. Skipped, saying why, when Chromium or Playwright is
missing (``scripts/test`` installs Chromium with apt-get).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.support.orchestrator import (
    cloned_database,
    fast_settings,
    running_orchestrator,
    step,
    wait_final,
    wait_step,
)
from tests.support.participant import ScriptedParticipant
from tests.support.servers import serve_app
from tests.ui.helpers import register, start

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.e2e,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed"),
]
PARK_FAST = {"max_attempts": 2, "initial_backoff_ms": 10, "max_backoff_ms": 10}


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as p:
        launched = await p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    opened = await context.new_page()
    try:
        yield opened
    finally:
        await context.close()


@pytest.fixture
async def ui(template_db: str, participant_url: str) -> AsyncIterator[httpx.AsyncClient]:
    with cloned_database(template_db) as url:
        async with running_orchestrator(fast_settings(url, {"p": [participant_url]})) as api:
            yield api


async def parked(api: httpx.AsyncClient, participant: ScriptedParticipant, n: int) -> list[str]:
    """``n`` sagas parked as failed at a step whose participant answers 503."""
    participant.steady["a"] = 503
    await register(api, "parks", [step("a", retry=PARK_FAST), step("b")], on_failure="park")
    ids = [await start(api, "parks", {"order": k}) for k in range(n)]
    for saga_id in ids:
        assert (await wait_final(api, saga_id))["status"] == "failed"
    return ids


async def status_badge(page: Any) -> Any:
    return page.locator("#saga [data-field=status]").first


async def test_filter_open_a_parked_saga_retry_it_and_watch_it_complete(
    ui: httpx.AsyncClient, participant: ScriptedParticipant, page: Any
) -> None:
    [saga_id] = await parked(ui, participant, 1)
    await page.goto(f"{ui.base_url}/ui/sagas")
    await page.select_option("select[name=status]", "failed")
    await page.click("text=Filter")
    await page.wait_for_url("**/ui/sagas?status=failed*")
    await page.click(f"a[href='/ui/sagas/{saga_id}']")
    await page.wait_for_url(f"**/ui/sagas/{saga_id}")
    assert await (await status_badge(page)).text_content() == "failed"
    timeline = page.locator(".timeline svg")
    assert await timeline.locator("rect.bar.transient").count() == 2  # both attempts at a
    participant.steady["a"] = 200  # the participant is fixed
    await page.evaluate("window.__same_page = true")
    await page.click("form[data-action=retry] button")
    await playwright_api.expect(await status_badge(page)).to_have_text("completed", timeout=15000)
    assert await page.evaluate("window.__same_page") is True, "the page was reloaded"
    assert "retry: accepted" in (await page.locator("#flash").text_content() or "")


async def test_a_refused_action_shows_the_apis_message(
    ui: httpx.AsyncClient, participant: ScriptedParticipant, page: Any
) -> None:
    await register(ui, "one", [step("a")])
    saga_id = await start(ui, "one")
    await wait_final(ui, saga_id)
    await page.goto(f"{ui.base_url}/ui/sagas/{saga_id}")
    await page.click("form[data-action=cancel] button")
    flash = page.locator("#flash")
    await playwright_api.expect(flash).to_contain_text("completed")
    assert await flash.get_attribute("class") == "refused"


async def test_bulk_retry_of_a_filtered_set_after_a_confirmation(
    ui: httpx.AsyncClient, participant: ScriptedParticipant, page: Any
) -> None:
    ids = await parked(ui, participant, 3)
    await page.goto(f"{ui.base_url}/ui/sagas?status=failed&definition=parks")
    asked: list[str] = []

    async def confirm(dialog: Any) -> None:
        asked.append(dialog.message)
        await dialog.accept()

    page.on("dialog", confirm)
    participant.steady["a"] = 200
    await page.click("form[data-bulk] button")
    await playwright_api.expect(page.locator("#flash")).to_have_text("3 failed sagas re-armed")
    assert len(asked) == 1
    assert "3 failed sagas" in asked[0]
    for saga_id in ids:
        row = page.locator(f"tr[data-saga='{saga_id}'] [data-field=status]")
        await playwright_api.expect(row).to_have_text("completed", timeout=15000)


async def test_cancel_a_running_saga(
    ui: httpx.AsyncClient, participant: ScriptedParticipant, page: Any
) -> None:
    participant.delay["b"] = 3.0
    await register(ui, "slow", [step("a"), step("b", timeout_ms=10_000), step("c")])
    saga_id = await start(ui, "slow")
    await wait_step(ui, saga_id, 1, "running")
    await page.goto(f"{ui.base_url}/ui/sagas/{saga_id}")
    await page.click("form[data-action=cancel] button")
    await playwright_api.expect(await status_badge(page)).to_have_text("compensated", timeout=20000)
    saga = (await ui.get(f"/v1/sagas/{saga_id}")).json()
    assert saga["status"] == "compensated"


async def test_a_malicious_input_stays_text(
    ui: httpx.AsyncClient, participant: ScriptedParticipant, page: Any
) -> None:
    hostile = {
        "note": "<script>window.__owned = 1</script>",
        "image": '<img src=x onerror="window.__owned = 2">',
    }
    await register(ui, "one", [step("a")])
    saga_id = await start(ui, "one", hostile)
    await wait_final(ui, saga_id)
    await page.goto(f"{ui.base_url}/ui/sagas/{saga_id}")
    await page.wait_for_load_state("networkidle")
    assert await page.evaluate("window.__owned") is None
    assert "<script>window.__owned = 1</script>" in (
        await page.locator("pre.json").text_content() or ""
    )


async def test_with_an_api_key_the_ui_refuses_until_it_is_entered(
    template_db: str, participant_url: str, page: Any
) -> None:
    key = "ui-key-0123456789abcdef"
    with cloned_database(template_db) as url:
        settings = fast_settings(url, {"p": [participant_url]}, api_key=key)
        async with running_orchestrator(settings) as api:
            await page.goto(f"{api.base_url}/ui/sagas")
            assert "/ui/login" in page.url
            await page.get_by_label("API key").fill("not-the-key")
            await page.click("text=Enter")
            await playwright_api.expect(page.locator("[role=alert]")).to_contain_text("refused")
            await page.get_by_label("API key").fill(key)
            await page.click("text=Enter")
            await page.wait_for_url("**/ui/sagas")
            await playwright_api.expect(page.locator("h1")).to_have_text("Sagas")
            cookies = {c["name"]: c for c in await page.context.cookies()}
            assert cookies["saga_key"]["httpOnly"] is True
            assert cookies["saga_key"]["sameSite"] == "Strict"
            assert await page.evaluate("document.cookie") == ""  # no script can read them


async def test_a_forged_cross_site_post_is_refused(
    ui: httpx.AsyncClient, participant: ScriptedParticipant, page: Any
) -> None:
    [saga_id] = await parked(ui, participant, 1)
    await page.goto(f"{ui.base_url}/ui/sagas/{saga_id}")  # the browser holds the UI's cookies
    target = f"{ui.base_url}/ui/sagas/{saga_id}/compensate"
    forged = (
        "<!doctype html><form id=f method=post action='" + target + "'>"
        "<input name=csrf value=guessed></form><script>f.submit()</script>"
    )

    async def evil(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/html")],
            }
        )
        await send({"type": "http.response.body", "body": forged.encode()})

    async with serve_app(evil) as evil_url:
        # localhost is another site than 127.0.0.1: SameSite cookies stay home.
        other_site = evil_url.replace("127.0.0.1", "localhost")
        async with page.expect_response(target) as answer:
            await page.goto(other_site)
        assert (await answer.value).status == 403
    await asyncio.sleep(0.5)
    assert (await ui.get(f"/v1/sagas/{saga_id}")).json()["status"] == "failed"
