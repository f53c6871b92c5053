"""A video call between Chromium and Firefox: WebRTC interoperates, both ways, through the
same pages.  Firefox is Debian's ESR, driven over WebDriver BiDi (tests/firefox.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from .browsers import OpenTab
from .firefox import Firefox, require_firefox
from .servers import LiveServer
from .test_call_browser import (
    INBOUND,
    RECORD_PEER_CONNECTIONS,
    call_page,
    notice,
    panel,
    poll,
    remote_video_width,
    wait_for_inbound_growth,
)


@pytest.fixture
async def firefox(tmp_path: Path) -> AsyncIterator[Firefox]:
    require_firefox()
    browser = Firefox(tmp_path / "firefox-profile")
    try:
        await browser.start()
        yield browser
    finally:
        await browser.stop()


async def firefox_inbound_bytes(firefox: Firefox, kind: str) -> int:
    stats: dict[str, Any] | None = await firefox.evaluate(f"({INBOUND})({kind!r})")
    return int(stats["bytes"]) if stats else 0


async def test_chromium_calls_firefox_and_media_flows_both_ways(
    server: LiveServer, open_tab: OpenTab, firefox: Firefox
) -> None:
    alice = await call_page(open_tab, server.http_url, "alice")
    await firefox.add_script(RECORD_PEER_CONNECTIONS)
    await firefox.goto(f"{server.http_url}/call?name=bob")
    state = "document.getElementById('call-panel').dataset.state"
    await poll(
        lambda: firefox.evaluate("document.getElementById('calls-state').dataset.state"),
        lambda value: value == "online",
        "firefox online",
    )

    await alice.page.get_by_role("button", name="Call bob").click()
    await poll(lambda: firefox.evaluate(state), lambda value: value == "incoming", "ringing")
    assert await firefox.evaluate("document.getElementById('call-status').textContent") == (
        "alice is calling you"
    )
    await firefox.evaluate("document.getElementById('accept-call').click()")

    await expect(panel(alice)).to_have_attribute("data-state", "in_call")
    await poll(lambda: firefox.evaluate(state), lambda value: value == "in_call", "in call")
    await poll(lambda: remote_video_width(alice), lambda width: width > 0, "firefox's video")
    await wait_for_inbound_growth(alice, "video")
    await wait_for_inbound_growth(alice, "audio")
    width = "document.getElementById('remote-video').videoWidth"
    await poll(lambda: firefox.evaluate(width), lambda value: value > 0, "chromium's video")
    for kind in ("video", "audio"):
        start = await firefox_inbound_bytes(firefox, kind)
        await poll(
            lambda kind=kind: firefox_inbound_bytes(firefox, kind),
            lambda now, start=start: now > start + 1000,
            f"{kind} bytes into firefox",
        )

    await firefox.evaluate("document.getElementById('hangup-button').click()")
    await expect(notice(alice)).to_have_text("bob hung up.")
    await expect(panel(alice)).to_be_hidden()
    await poll(lambda: firefox.evaluate(state), lambda value: value == "idle", "firefox idle")
