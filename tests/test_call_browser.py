"""Video calls between two real browsers: Chromium with a fake camera and microphone, two
isolated contexts (two people), a real server.  Media must really flow both ways."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from .browsers import DESKTOP, PHONE, OpenTab, Tab, screenshot
from .servers import LiveServer

POLL_SECONDS = 15.0
README_CALL_SCREENSHOT = Path(__file__).parent.parent / "docs" / "call.png"

# Records every RTCPeerConnection the page makes, so a test can read its statistics.
RECORD_PEER_CONNECTIONS = """
window.peerConnections = [];
const NativePeerConnection = window.RTCPeerConnection;
window.RTCPeerConnection = class extends NativePeerConnection {
  constructor(...args) {
    super(...args);
    window.peerConnections.push(this);
  }
};
"""

INBOUND = """
async (kind) => {
  const pc = window.peerConnections.at(-1);
  if (!pc) return null;
  const stats = await pc.getStats();
  let total = null;
  stats.forEach((report) => {
    if (report.type === 'inbound-rtp' && report.kind === kind) {
      total = { bytes: (total?.bytes ?? 0) + report.bytesReceived,
                level: report.audioLevel ?? null };
    }
  });
  return total;
}
"""


async def call_page(open_tab: OpenTab, base_url: str, name: str, viewport: Any = DESKTOP) -> Tab:
    tab = await open_tab(f"{base_url}/call", viewport)
    await tab.page.add_init_script(RECORD_PEER_CONNECTIONS)
    await tab.page.reload()
    await tab.page.get_by_label("Your name").fill(name)
    await tab.page.get_by_role("button", name="Log in").click()
    await expect(tab.page.locator("#calls-state")).to_have_attribute("data-state", "online")
    return tab


def panel(tab: Tab) -> Any:
    return tab.page.locator("#call-panel")


def notice(tab: Tab) -> Any:
    return tab.page.locator("#call-notice")


async def inbound(tab: Tab, kind: str) -> dict[str, Any] | None:
    result: dict[str, Any] | None = await tab.page.evaluate(INBOUND, kind)
    return result


async def poll(read: Callable[[], Awaitable[Any]], accept: Callable[[Any], bool], what: str) -> Any:
    """Read until ``accept`` holds, or fail after POLL_SECONDS with the last reading."""
    value = None
    try:
        async with asyncio.timeout(POLL_SECONDS):
            while not accept(value := await read()):  # noqa: ASYNC110 - the page has no event to await
                await asyncio.sleep(0.2)
    except TimeoutError:
        pytest.fail(f"{what}: still {value!r} after {POLL_SECONDS} s")
    return value


async def wait_for_inbound_growth(tab: Tab, kind: str) -> None:
    """inbound-rtp bytes of ``kind`` increase between two readings."""
    start = await _bytes(tab, kind)
    await poll(lambda: _bytes(tab, kind), lambda now: now > start + 1000, f"{kind} bytes in")


async def _bytes(tab: Tab, kind: str) -> int:
    stats = await inbound(tab, kind)
    return int(stats["bytes"]) if stats else 0


async def remote_video_width(tab: Tab) -> int:
    width: int = await tab.page.eval_on_selector(
        "#remote-video", "v => v.readyState >= 2 && !v.paused ? v.videoWidth : 0"
    )
    return width


async def start_call(caller: Tab, callee: Tab, callee_name: str, caller_name: str) -> None:
    await caller.page.get_by_role("button", name=f"Call {callee_name}").click()
    await expect(panel(caller)).to_have_attribute("data-state", re.compile("calling|ringing"))
    await expect(panel(callee)).to_have_attribute("data-state", "incoming")
    await expect(callee.page.locator("#call-status")).to_have_text(f"{caller_name} is calling you")


async def test_a_video_call_flows_both_ways_then_mute_share_and_hang_up(
    server: LiveServer, open_tab: OpenTab
) -> None:
    alice = await call_page(open_tab, server.http_url, "alice")
    bob = await call_page(open_tab, server.http_url, "bob", viewport=PHONE)
    await expect(alice.page.locator("#online-users .online-user")).to_have_attribute(
        "data-name", "bob"
    )
    await expect(bob.page.locator("#online-users .online-name")).to_have_text(["alice"])

    await start_call(alice, bob, "bob", "alice")
    await expect(alice.page.locator("#call-status")).to_have_text("Ringing bob…")
    assert (await bob.page.title()).startswith("📞 alice is calling")
    await screenshot(bob, "call-incoming.png")
    await bob.page.get_by_role("button", name="Accept").click()

    for tab, other in ((alice, "bob"), (bob, "alice")):
        await expect(panel(tab)).to_have_attribute("data-state", "in_call")
        await expect(tab.page.locator("#call-status")).to_have_text(f"In call with {other}")
        await expect(tab.page.locator("#call-duration .value")).to_have_text(
            re.compile(r"^\d\d:\d\d$")
        )
        await poll(lambda tab=tab: remote_video_width(tab), lambda w: w > 0, "remote video")
        await wait_for_inbound_growth(tab, "video")
        await wait_for_inbound_growth(tab, "audio")
    assert not (await bob.page.title()).startswith("📞")
    await expect(
        bob.page.locator("#online-users .online-user[data-name=alice] .online-status")
    ).to_have_text("in a call")
    await screenshot(alice, "call-in-call-desktop.png")
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        await alice.page.screenshot(path=README_CALL_SCREENSHOT)
    await screenshot(bob, "call-in-call-phone.png")

    # both restart ICE at the same moment: perfect negotiation settles the glare, new ICE
    # credentials are agreed, and media keeps flowing
    before = [await remote_ufrag(tab) for tab in (alice, bob)]
    await asyncio.gather(*(tab.page.evaluate(RESTART_ICE) for tab in (alice, bob)))
    for tab, old in zip((alice, bob), before, strict=True):
        await poll(lambda tab=tab: remote_ufrag(tab), lambda ufrag, old=old: ufrag != old, "ufrag")
        await poll(lambda tab=tab: signaling(tab), lambda state: state == "stable", "signaling")
        await wait_for_inbound_growth(tab, "video")
        await expect(panel(tab)).to_have_attribute("data-state", "in_call")

    # mute: alice's microphone track is disabled, so bob hears silence
    await poll(lambda: _level(bob), lambda level: level > 0.001, "bob hears alice")
    await alice.page.get_by_role("button", name="Mute").click()
    await expect(alice.page.locator("#mute-button")).to_have_text("Unmute")
    await poll(lambda: _level(bob), lambda level: level < 0.0001, "silence after mute")
    await alice.page.get_by_role("button", name="Unmute").click()
    await poll(lambda: _level(bob), lambda level: level > 0.001, "sound after unmute")

    # camera off and on again
    await bob.page.get_by_role("button", name="Camera off").click()
    await expect(bob.page.locator("#camera-button")).to_have_text("Camera on")
    assert (
        await bob.page.eval_on_selector(
            "#local-video", "v => v.srcObject.getVideoTracks()[0].enabled"
        )
        is False
    )
    await bob.page.get_by_role("button", name="Camera on").click()

    # share the screen (headless Chromium captures a fake screen of the camera's size): alice
    # sends the screen track instead of the camera, bob's video keeps playing, and when the
    # share stops the camera is back
    assert await sent_video_surface(alice) is None
    await alice.page.get_by_role("button", name="Share screen").click()
    await expect(alice.page.locator("#share-button")).to_have_text("Stop sharing")
    await poll(lambda: sent_video_surface(alice), lambda surface: surface, "screen track sent")
    shown = "v => v.srcObject.getVideoTracks()[0].getSettings().displaySurface ?? null"
    assert await alice.page.eval_on_selector("#local-video", shown)  # the preview shows it
    await wait_for_inbound_growth(bob, "video")
    await screenshot(alice, "call-screen-shared.png")
    await alice.page.get_by_role("button", name="Stop sharing").click()
    await poll(lambda: sent_video_surface(alice), lambda surface: surface is None, "camera back")
    await wait_for_inbound_growth(bob, "video")

    await bob.page.get_by_role("button", name="Hang up").click()
    await expect(notice(bob)).to_have_text("You hung up.")
    await expect(notice(alice)).to_have_text("bob hung up.")
    for tab in (alice, bob):
        await expect(panel(tab)).to_be_hidden()
        await expect(panel(tab)).to_have_attribute("data-state", "idle")
        tracks = await tab.page.eval_on_selector("#local-video", "v => v.srcObject")
        assert tracks is None
    await expect(
        bob.page.locator("#online-users .online-user[data-name=alice] .online-status")
    ).to_have_text("available")


SENT_VIDEO_SURFACE = """
() => {
  const sender = window.peerConnections.at(-1).getSenders()
    .find((s) => s.track && s.track.kind === 'video');
  return sender.track.getSettings().displaySurface ?? null;
}
"""


async def sent_video_surface(tab: Tab) -> str | None:
    """What alice's video sender sends: a display surface while sharing, else None."""
    surface: str | None = await tab.page.evaluate(SENT_VIDEO_SURFACE)
    return surface


RESTART_ICE = "() => window.peerConnections.at(-1).restartIce()"


async def remote_ufrag(tab: Tab) -> str:
    ufrag: str = await tab.page.evaluate(
        "() => window.peerConnections.at(-1).remoteDescription.sdp.match(/a=ice-ufrag:(\\S+)/)[1]"
    )
    return ufrag


async def signaling(tab: Tab) -> str:
    state: str = await tab.page.evaluate("() => window.peerConnections.at(-1).signalingState")
    return state


async def _level(tab: Tab) -> float:
    stats = await inbound(tab, "audio")
    return float(stats["level"] or 0) if stats else 0.0


async def test_decline_and_busy(server: LiveServer, open_tab: OpenTab) -> None:
    alice = await call_page(open_tab, server.http_url, "alice")
    bob = await call_page(open_tab, server.http_url, "bob")
    carol = await call_page(open_tab, server.http_url, "carol")

    await start_call(alice, bob, "bob", "alice")
    await bob.page.get_by_role("button", name="Decline").click()
    await expect(notice(alice)).to_have_text("bob declined the call.")
    await expect(notice(bob)).to_have_text("You declined the call.")
    for tab in (alice, bob):
        await expect(panel(tab)).to_be_hidden()

    await start_call(alice, bob, "bob", "alice")
    await expect(
        carol.page.locator("#online-users .online-user[data-name=bob] .online-status")
    ).to_have_text("in a call")
    await carol.page.get_by_role("button", name="Call bob").click()
    await expect(notice(carol)).to_have_text("bob is busy in another call.")
    await expect(panel(carol)).to_be_hidden()
    await expect(panel(bob)).to_have_attribute("data-state", "incoming")  # undisturbed

    await alice.page.get_by_role("button", name="Cancel").click()
    await expect(notice(bob)).to_have_text("Missed call from alice.")
    await expect(notice(alice)).to_have_text("Call cancelled.")


@pytest.mark.parametrize("server_env", [{"QUARTCHAT_CALL_RING_TIMEOUT_SECONDS": "2"}])
async def test_call_a_room_member_with_one_click_and_no_answer(
    server: LiveServer, open_tab: OpenTab
) -> None:
    alice = await open_tab(f"{server.http_url}/room/standup/alice")
    bob = await open_tab(f"{server.http_url}/room/standup/bob", PHONE)
    call_bob = alice.page.get_by_role("button", name="Call bob")
    await expect(call_bob).to_be_enabled()
    await expect(bob.page.get_by_role("button", name="Call alice")).to_be_enabled()

    await call_bob.click()
    await expect(panel(bob)).to_have_attribute("data-state", "incoming")
    await expect(notice(alice)).to_have_text("bob did not answer.")
    await expect(notice(bob)).to_have_text("Missed call from alice.")
    await expect(panel(bob)).to_be_hidden()

    await call_bob.click()
    await bob.page.get_by_role("button", name="Accept").click()
    for tab in (alice, bob):
        await expect(panel(tab)).to_have_attribute("data-state", "in_call")
        await poll(lambda tab=tab: remote_video_width(tab), lambda w: w > 0, "remote video")
    await screenshot(alice, "call-from-room.png")
    await bob.page.close()  # the callee's tab closes mid-call
    await expect(notice(alice)).to_have_text("Connection lost: bob went offline.")
    await expect(panel(alice)).to_be_hidden()


async def test_a_denied_camera_is_explained_and_the_call_declined(
    server: LiveServer, open_tab: OpenTab
) -> None:
    alice = await call_page(open_tab, server.http_url, "alice")
    bob = await call_page(open_tab, server.http_url, "bob")
    # bob's browser refuses the camera and microphone, as when he clicks "Block"
    await bob.page.evaluate(
        """() => {
          navigator.mediaDevices.getUserMedia = () =>
            Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
        }"""
    )
    await start_call(alice, bob, "bob", "alice")
    await bob.page.get_by_role("button", name="Accept").click()
    await expect(notice(bob)).to_contain_text("Camera and microphone access was denied")
    await expect(notice(alice)).to_have_text("bob declined the call.")
    for tab in (alice, bob):
        await expect(panel(tab)).to_be_hidden()


async def test_without_a_camera_the_call_is_audio_only(
    server: LiveServer, open_tab: OpenTab
) -> None:
    alice = await call_page(open_tab, server.http_url, "alice")
    bob = await call_page(open_tab, server.http_url, "bob")
    # bob's machine has a microphone but no camera
    await bob.page.evaluate(
        """() => {
          const native = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
          navigator.mediaDevices.getUserMedia = (constraints) => constraints.video
            ? Promise.reject(new DOMException('Requested device not found', 'NotFoundError'))
            : native(constraints);
        }"""
    )
    await start_call(alice, bob, "bob", "alice")
    await bob.page.get_by_role("button", name="Accept").click()
    await expect(notice(bob)).to_have_text("No camera found: the call is audio only.")
    for tab in (alice, bob):
        await expect(panel(tab)).to_have_attribute("data-state", "in_call")
        await wait_for_inbound_growth(tab, "audio")
    await poll(lambda: remote_video_width(bob), lambda w: w > 0, "alice's video at bob")
    await alice.page.get_by_role("button", name="Hang up").click()
    await expect(notice(bob)).to_have_text("alice hung up.")


SLOW_CAMERA = """() => {
  window.openedStreams = [];
  const native = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (constraints) => {
    await new Promise((resolve) => setTimeout(resolve, 1500));  // the permission prompt
    const stream = await native(constraints);
    window.openedStreams.push(stream);
    return stream;
  };
}"""

LIVE_TRACKS = """() => window.openedStreams
  .flatMap((stream) => stream.getTracks()).filter((t) => t.readyState === 'live').length"""


async def test_cancelling_while_the_camera_starts_places_no_call_and_frees_it(
    server: LiveServer, open_tab: OpenTab
) -> None:
    alice = await call_page(open_tab, server.http_url, "alice")
    bob = await call_page(open_tab, server.http_url, "bob")
    await alice.page.evaluate(SLOW_CAMERA)
    await alice.page.get_by_role("button", name="Call bob").click()
    await expect(alice.page.locator("#call-status")).to_have_text("Calling bob…")
    await alice.page.get_by_role("button", name="Cancel").click()
    await expect(notice(alice)).to_have_text("Call cancelled.")
    await poll(lambda: alice.page.evaluate("() => window.openedStreams.length"), bool, "camera")
    assert await alice.page.evaluate(LIVE_TRACKS) == 0  # the camera went off at once
    await expect(panel(bob)).to_be_hidden()  # bob's phone never rang
    await expect(panel(alice)).to_be_hidden()

    # and a call that comes in while alice's camera starts wins over hers
    await alice.page.get_by_role("button", name="Call bob").click()
    await bob.page.get_by_role("button", name="Call alice").click()
    await expect(panel(alice)).to_have_attribute("data-state", "incoming")
    await alice.page.get_by_role("button", name="Accept").click()
    for tab in (alice, bob):
        await expect(panel(tab)).to_have_attribute("data-state", "in_call")
        await wait_for_inbound_growth(tab, "audio")
