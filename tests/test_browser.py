"""The pages in a real browser: Debian's Chromium (never downloaded) driven by Playwright,
against a real server (``LiveServer``: Hypercorn in a subprocess).

Screenshots land in ``tests/artifacts/`` (git-ignored).  ``docs/screenshot.png`` (the README's
picture) is rewritten only when ``UPDATE_SCREENSHOT=1`` is set.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
from playwright.async_api import (
    Browser,
    Page,
    expect,
)

from .browsers import DESKTOP, PHONE, TIMEOUT_MS, OpenTab, Tab, screenshot
from .servers import LiveServer

README_SCREENSHOT = Path(__file__).parent.parent / "docs" / "screenshot.png"


async def join(
    open_tab: OpenTab, base_url: str, room: str, user: str, viewport: dict[str, int] = DESKTOP
) -> Tab:
    """Fill the start page's form like a person would, and wait until the room is live."""
    tab = await open_tab(f"{base_url}/", viewport)
    await tab.page.get_by_label("Room name").fill(room)
    await tab.page.get_by_label("Your name").fill(user)
    await tab.page.get_by_role("button", name="Join room").click()
    await tab.page.wait_for_url(re.compile(r"/room/[^/]+/[^/]+$"))
    assert unquote(tab.page.url).endswith(f"/room/{room}/{user}")
    await expect(tab.state).to_have_attribute("data-state", "connected")
    return tab


async def say(tab: Tab, text: str) -> None:
    """Type a message and press Enter."""
    box = tab.page.locator("#message-input")
    await box.fill(text)
    await box.press("Enter")
    await expect(box).to_have_value("")


async def said(tab: Tab, text: str) -> None:
    """Wait until ``text`` is shown as a stored message (it has its id)."""
    await expect(tab.stored().filter(has_text=text).last).to_be_visible()


async def assert_once_each(tab: Tab, texts: list[str]) -> None:
    """Exactly these stored messages, in this order, ids strictly increasing, none pending."""
    await expect(tab.stored(".message[data-id] .text")).to_have_text(texts)
    await expect(tab.stored(".pending")).to_have_count(0)
    ids = await tab.ids()
    assert ids == sorted(set(ids)), ids


# -- a. a conversation ---------------------------------------------------------------------


CONVERSATION = [
    ("alice", "Hi Bob! Did the deploy go out?"),
    ("bob", "Yes, ten minutes ago. Hypercorn restarted cleanly."),
    ("alice", "My tab reconnected on its own: nothing lost, nothing twice."),
    ("bob", "That's the ?since= resume.\nHistory fills the gap, ids drop the echoes."),
    ("alice", "Lovely. Video call after lunch?"),
]


async def test_two_people_chat_in_the_same_order(server: LiveServer, open_tab: OpenTab) -> None:
    alice = await join(open_tab, server.http_url, "design-review", "alice")
    bob = await join(open_tab, server.http_url, "design-review", "bob", viewport=PHONE)
    tabs = {"alice": alice, "bob": bob}

    for name, tab in tabs.items():
        await expect(tab.page.locator("#members .member-name")).to_have_text(["alice", "bob"])
        await expect(tab.page.locator("#member-count")).to_have_text("2")
        await expect(tab.page.locator("#members .member.me .member-name")).to_have_text(name)
    await expect(alice.page.locator("#messages .notice")).to_have_text(["bob joined"])
    await expect(bob.page.locator("#messages .notice")).to_have_count(0)  # not for oneself

    for user, text in CONVERSATION:
        await say(tabs[user], text)
        await said(tabs[user], text)  # stored before the next one is sent: a known order

    texts = [text for _, text in CONVERSATION]
    for name, tab in tabs.items():
        await assert_once_each(tab, texts)
        own = [text for user, text in CONVERSATION if user == name]
        other = [text for user, text in CONVERSATION if user != name]
        await expect(tab.stored(".message.own[data-id] .text")).to_have_text(own)
        await expect(tab.stored(".message.other[data-id] .text")).to_have_text(other)
        await expect(tab.stored(".message.own .author").first).to_have_text("You")
        times = tab.stored(".message[data-id] time.time")
        await expect(times).to_have_count(len(texts))
        assert re.fullmatch(r"\d{1,2}:\d{2}(\s?[AP]M)?", (await times.first.inner_text()).strip())
        assert await times.first.get_attribute("datetime")
    assert await alice.page.title() == "design-review · quartchat"

    assert await alice.ids() == await bob.ids()  # the same messages, in the same order

    await bob.page.locator("#message-input").fill("See you")  # alice sees bob typing
    await expect(alice.page.locator("#typing")).to_have_text("bob is typing…")
    await screenshot(alice, "room-desktop.png")
    await screenshot(bob, "room-phone.png")
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        await alice.page.screenshot(path=README_SCREENSHOT)

    await bob.page.get_by_role("link", name="Leave room").click()
    await bob.page.wait_for_url(f"{server.http_url}/")
    await expect(alice.page.locator("#members .member-name")).to_have_text(["alice"])
    await expect(alice.page.locator("#messages .notice").last).to_have_text("bob left")


# -- b. nothing is HTML --------------------------------------------------------------------


async def test_user_text_is_shown_literally(server: LiveServer, open_tab: OpenTab) -> None:
    payload = "<img src=x onerror=alert(1)>"
    odd_name = "d'Artagnan"
    musketeer = await join(open_tab, server.http_url, "xss", odd_name)
    bob = await join(open_tab, server.http_url, "xss", "bob")

    await say(musketeer, payload)
    box = musketeer.page.locator("#message-input")  # Shift+Enter: a new line, not a send
    await box.fill("line one")
    await box.press("Shift+Enter")
    await box.press_sequentially("  line two")
    await box.press("Enter")

    for tab in (musketeer, bob):
        await expect(tab.stored(".text")).to_have_count(2)
        texts = await tab.stored(".text").evaluate_all("els => els.map(e => e.textContent)")
        assert texts == [payload, "line one\n  line two"]
        assert await tab.page.locator("#messages img").count() == 0
        assert await tab.page.locator("#members img").count() == 0
        await expect(tab.page.locator("#members .member-name")).to_have_text(
            sorted(["bob", odd_name], key=str.casefold)
        )
    await expect(bob.stored(".author").first).to_have_text(odd_name)
    await expect(musketeer.page.locator(".welcome-name")).to_have_text(odd_name)
    await expect(bob.page.locator("#messages .notice")).to_have_count(0)  # bob came second
    await expect(musketeer.page.locator("#messages .notice")).to_have_text(["bob joined"])

    # the line break survives on screen too (white-space: pre-wrap)
    second = bob.stored(".text").nth(1)
    assert "\n" in await second.inner_text()
    await bob.page.wait_for_timeout(300)  # a dialog would have opened by now
    assert musketeer.dialogs == bob.dialogs == []


# -- c. a server restart -------------------------------------------------------------------


async def test_reconnect_after_restart_loses_and_repeats_nothing(
    tmp_path: Path, open_tab: OpenTab
) -> None:
    live = LiveServer(tmp_path)
    live.start()
    try:
        alice = await join(open_tab, live.http_url, "ops", "alice")
        bob = await join(open_tab, live.http_url, "ops", "bob")
        await say(alice, "before the restart")
        await said(bob, "before the restart")

        await asyncio.to_thread(live.stop)
        for tab in (alice, bob):
            await expect(tab.state).to_have_attribute(
                "data-state", re.compile("reconnecting|offline")
            )
            await expect(tab.state).to_contain_text(re.compile("Reconnecting|Offline"))

        await say(alice, "sent while the server is down")
        pending = alice.page.locator("#messages .message.pending")
        await expect(pending).to_have_count(1)
        await expect(pending.locator(".text")).to_have_text("sent while the server is down")
        await screenshot(alice, "room-reconnecting.png")

        await asyncio.to_thread(live.start)
        for tab in (alice, bob):
            await expect(tab.state).to_have_attribute("data-state", "connected")
        await said(bob, "sent while the server is down")
        await said(alice, "sent while the server is down")
        await expect(pending).to_have_count(0)

        await say(bob, "back again")
        await said(alice, "back again")
        await said(bob, "back again")

        expected = ["before the restart", "sent while the server is down", "back again"]
        for tab in (alice, bob):
            await assert_once_each(tab, expected)
            await expect(tab.page.locator("#members .member-name")).to_have_text(["alice", "bob"])

        async with httpx.AsyncClient(base_url=live.http_url, timeout=TIMEOUT_MS / 1000) as http:
            response = await http.get("/api/rooms/ops/messages")
        assert [m["message"] for m in response.json()["messages"]] == expected  # stored once
    finally:
        await asyncio.to_thread(live.stop)


# -- d. typing -----------------------------------------------------------------------------


async def test_typing_indicator_comes_and_goes(server: LiveServer, open_tab: OpenTab) -> None:
    alice = await join(open_tab, server.http_url, "typing", "alice")
    bob = await join(open_tab, server.http_url, "typing", "bob")
    typing = alice.page.locator("#typing")
    await expect(typing).to_have_text("")

    await bob.page.locator("#message-input").press_sequentially("hel", delay=50)
    await expect(typing).to_have_text("bob is typing…")
    await expect(bob.page.locator("#typing")).to_have_text("")  # not shown to oneself
    await expect(typing).to_have_text("", timeout=10_000)  # gone a few seconds later
    assert await alice.stored().count() == 0  # typing sent nothing


# -- e. active rooms on the start page -----------------------------------------------------


async def test_start_page_lists_active_rooms(server: LiveServer, open_tab: OpenTab) -> None:
    visitor = await open_tab(f"{server.http_url}/", viewport=PHONE)
    await expect(visitor.page.get_by_text("No one is chatting right now")).to_be_visible()
    await expect(visitor.page.locator(".room-link")).to_have_count(0)

    await join(open_tab, server.http_url, "book-club", "alice")
    await join(open_tab, server.http_url, "book-club", "bob")
    await join(open_tab, server.http_url, "chess", "carol")

    await visitor.page.reload()
    links = visitor.page.locator(".room-link")
    await expect(links.locator(".room-name")).to_have_text(["book-club", "chess"])  # busiest first
    await expect(links.locator(".room-count")).to_have_text(["2", "1"])
    await expect(visitor.page.get_by_text("No one is chatting right now")).to_be_hidden()
    assert await links.first.get_attribute("href") == "/?room=book-club"
    await screenshot(visitor, "index-phone.png")

    await visitor.page.evaluate("window.__notReloaded = true")
    await links.filter(has_text="book-club").click()
    await expect(visitor.page.locator("#room_name")).to_have_value("book-club")
    await expect(visitor.page.locator("#username")).to_be_focused()
    assert await visitor.page.evaluate("window.__notReloaded === true")

    # the link works without JavaScript too: /?room= fills the field on the server
    await visitor.page.goto(f"{server.http_url}/?room=chess")
    await expect(visitor.page.locator("#room_name")).to_have_value("chess")


# -- f. the server's word on names ---------------------------------------------------------


async def submit_status(page: Page) -> int:
    """Press "Join room" and return the HTTP status of the page it leads to."""
    async with page.expect_navigation() as navigation:
        await page.get_by_role("button", name="Join room").click()
    response = await navigation.value
    assert response is not None
    return response.status


async def test_start_page_shows_the_servers_errors_inline(
    server: LiveServer, open_tab: OpenTab
) -> None:
    tab = await open_tab(f"{server.http_url}/")
    page = tab.page
    await page.get_by_label("Room name").fill("bad room!")  # fine for the browser, not the server
    await page.get_by_label("Your name").fill("alice")
    assert await submit_status(page) == 400

    room = page.locator("#room_name")
    await expect(room).to_have_value("bad room!")
    await expect(room).to_have_attribute("aria-invalid", "true")
    error = page.locator("#room_name-error")
    await expect(error).to_be_visible()
    await expect(error).to_contain_text("Room names may use letters, digits")
    assert "room_name-error" in ((await room.get_attribute("aria-describedby")) or "").split()
    await expect(page.locator("#username")).to_have_value("alice")
    await expect(page.locator("#username")).not_to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#username-error")).to_have_count(0)
    await screenshot(tab, "index-errors.png")

    # with the browser's own checks switched off, an empty name is the server's to refuse
    await room.fill("lobby")
    await page.get_by_label("Your name").fill("")
    await page.evaluate("document.getElementById('join-form').noValidate = true")
    assert await submit_status(page) == 400
    await expect(page.locator("#username-error")).to_have_text("Please enter your name.")
    await expect(page.locator("#room_name-error")).to_have_count(0)
    await expect(page.locator("#room_name")).to_have_value("lobby")

    # a valid form leads into the room
    await page.get_by_label("Your name").fill("alice")
    await page.get_by_role("button", name="Join room").click()
    await page.wait_for_url(f"{server.http_url}/room/lobby/alice")
    await expect(page.get_by_role("heading", level=1)).to_have_text("lobby")


# -- g. a refused message ------------------------------------------------------------------


@pytest.fixture
def strict_server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(
        tmp_path,
        env={"QUARTCHAT_LIMITS_RATE_PER_SECOND": "0.2", "QUARTCHAT_LIMITS_RATE_BURST": "2"},
    )
    live.start()
    try:
        yield live
    finally:
        live.stop()


async def test_a_refused_message_is_marked_and_can_be_retried(
    strict_server: LiveServer, open_tab: OpenTab
) -> None:
    """The server names the refused message by its client_id; the page marks that one."""
    alice = await join(open_tab, strict_server.http_url, "strict", "alice")
    for text in ("one", "two", "three"):  # the third is over the burst: rate_limited
        await say(alice, text)
    refused = alice.stored(".message.failed")
    await expect(refused).to_have_count(1)
    await expect(refused.locator(".text")).to_have_text("three")
    await expect(alice.page.locator("#send-error")).to_contain_text("slow down")
    await expect(alice.stored(".message[data-id] .text")).to_have_text(["one", "two"])
    await asyncio.sleep(5)  # a token comes back at 0.2/s
    await refused.get_by_role("button", name="Retry").click()
    await assert_once_each(alice, ["one", "two", "three"])
    await expect(alice.stored(".message.failed")).to_have_count(0)


# -- h. local time --------------------------------------------------------------------------


async def test_times_are_shown_in_the_readers_time_zone(
    server: LiveServer, browser: Browser
) -> None:
    """The server sends UTC; a reader in Tokyo (UTC+9, no DST) sees Tokyo time."""
    context = await browser.new_context(timezone_id="Asia/Tokyo", locale="en-GB")
    try:
        page = await context.new_page()
        await page.goto(f"{server.http_url}/room/tz/kenji")
        box = page.locator("#message-input")
        await box.fill("konnichiwa")
        await box.press("Enter")
        stamp = page.locator("#messages .message[data-id] time")
        await expect(stamp).to_have_count(1, timeout=TIMEOUT_MS)
        sent_utc = datetime.fromisoformat(await stamp.get_attribute("datetime") or "")
        tokyo = sent_utc.astimezone(timezone(timedelta(hours=9)))
        shown = re.compile(rf"^0?{tokyo.hour}:{tokyo.minute:02d}$")  # en-GB, 24-hour clock
        await expect(stamp).to_have_text(shown, timeout=TIMEOUT_MS)
    finally:
        await context.close()
