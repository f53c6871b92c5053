"""Real Chromium for the browser tests: Debian's /usr/bin/chromium (never a download),
driven by Playwright, with a fake camera and microphone for calls.

Screenshots land in ``tests/artifacts/`` (git-ignored).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Dialog,
    Locator,
    Page,
    async_playwright,
    expect,
)

from .servers import missing

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # calls: a fake camera and microphone, permission prompts accepted, and ICE candidates
    # on loopback (a loopback-only host gathers none without it, and no call connects)
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
]
TIMEOUT_MS = 15_000  # the longest any single wait may take
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 740}
ARTIFACTS = Path(__file__).parent / "artifacts"

expect.set_options(timeout=TIMEOUT_MS)


@dataclass
class Tab:
    """A page in its own browser context (own cookies: a separate person)."""

    page: Page
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def state(self) -> Locator:
        return self.page.locator("#connection-state")

    def stored(self, selector: str = ".message[data-id]") -> Locator:
        """Inside the message list; by default the stored messages (they have an id)."""
        return self.page.locator(f"#messages {selector}")

    async def ids(self) -> list[int]:
        values = await self.stored().evaluate_all("items => items.map(item => item.dataset.id)")
        return [int(value) for value in values]


OpenTab = Callable[..., Awaitable[Tab]]


def require_chromium() -> None:
    """Skip without Chromium, except in CI (``CI`` set), where that is a failure."""
    if CHROMIUM.exists():
        return
    missing(f"{CHROMIUM} is missing (apt-get install chromium); browsers are never downloaded")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    require_chromium()
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, timeout=TIMEOUT_MS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def open_tab(browser: Browser) -> AsyncIterator[OpenTab]:
    """Open pages in fresh contexts; afterwards, fail on script errors or CSP violations."""
    tabs: list[Tab] = []

    async def open_(url: str, viewport: dict[str, int] = DESKTOP) -> Tab:
        context = await browser.new_context(
            viewport=viewport,
            is_mobile=viewport == PHONE,
            permissions=["camera", "microphone"],
        )
        context.set_default_timeout(TIMEOUT_MS)
        context.set_default_navigation_timeout(TIMEOUT_MS)
        tab = Tab(await context.new_page())

        async def on_dialog(dialog: Dialog) -> None:
            tab.dialogs.append(dialog.message)
            await dialog.dismiss()

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error" and "Content Security Policy" in message.text:
                tab.errors.append(message.text)

        tab.page.on("dialog", on_dialog)
        tab.page.on("console", on_console)
        tab.page.on("pageerror", lambda error: tab.errors.append(str(error)))
        tabs.append(tab)
        await tab.page.goto(url)
        return tab

    yield open_
    for tab in tabs:
        await tab.page.context.close()
    assert [error for tab in tabs for error in tab.errors] == []


async def screenshot(tab: Tab, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await tab.page.screenshot(path=ARTIFACTS / name)
