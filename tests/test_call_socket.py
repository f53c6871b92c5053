"""The call websocket through Quart's test client: the seed's sequence, every call state,
identity, injection attempts and bad frames."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from quart.testing import WebsocketResponseError

from quartchat.broker import BrokerUnavailable, Frame

from .conftest import receive_json, receive_until

OFFER = {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\n"}
ANSWER = {"type": "answer", "sdp": "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\ns=-\r\n"}
SEED_CANDIDATE = {
    "label": 0,
    "id": "0",
    "candidate": "candidate:1 1 udp 2113937151 127.0.0.1 50000 typ host",
}


@pytest.fixture
def settings_overrides(tmp_path: Path) -> dict[str, dict[str, Any]]:
    return {
        "store": {"url": f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"},
        "call": {"ring_timeout_seconds": 30, "reach_timeout_seconds": 2},
    }


def frame(kind: str, **data: Any) -> str:
    return json.dumps({"type": kind, "data": data})


@asynccontextmanager
async def logged_in(client: Any, name: str, **options: Any) -> AsyncIterator[Any]:
    async with client.websocket("/ws/call/", **options) as connection:
        assert await receive_json(connection) == {
            "type": "connection",
            "data": {"message": "Connected"},
        }
        await connection.send(frame("login", name=name))
        welcome = await receive_until(connection, "logged_in")
        assert welcome["data"]["name"] == name
        yield connection


async def expect(connection: Any, kind: str) -> dict[str, Any]:
    """The next frame that is not a directory update; it must be of ``kind``."""
    while True:
        got = await receive_json(connection)
        if got["type"] != "user_status":
            assert got["type"] == kind, got
            data: dict[str, Any] = got["data"]
            return data


async def assert_no_call_frames(connection: Any, seconds: float = 0.3) -> None:
    """Fail if anything but a directory update arrives within ``seconds``."""
    try:
        while True:
            got = await receive_json(connection, seconds)
            assert got["type"] == "user_status", got
    except TimeoutError:
        return


async def ringing_call(caller: Any, callee: Any, callee_name: str) -> None:
    await caller.send(frame("call", name=callee_name, rtcMessage=OFFER))
    assert (await expect(callee, "call_received"))["rtcMessage"] == OFFER
    await expect(caller, "ringing")


async def connected_call(caller: Any, callee: Any, caller_name: str, callee_name: str) -> None:
    await ringing_call(caller, callee, callee_name)
    await callee.send(frame("answer_call", caller=caller_name, rtcMessage=ANSWER))
    answered = await expect(caller, "call_answered")
    assert answered == {"rtcMessage": ANSWER, "name": callee_name}


# -- the seed's client ---------------------------------------------------------------------


async def test_seed_client_sequence(client: Any) -> None:
    """The workshop's call.js: login, call with the offer, candidates sent while it rings,
    answer, candidates back.  Every frame it reads keeps the seed's shape."""
    async with logged_in(client, "ada") as ada, logged_in(client, "bob") as bob:
        await ada.send(frame("call", name="bob", rtcMessage=OFFER))
        await ada.send(frame("ICEcandidate", user="bob", rtcMessage=SEED_CANDIDATE))
        received = await receive_until(bob, "call_received")
        assert received == {"type": "call_received", "data": {"caller": "ada", "rtcMessage": OFFER}}
        candidate = await receive_until(bob, "ICEcandidate")
        assert candidate == {"type": "ICEcandidate", "data": {"rtcMessage": SEED_CANDIDATE}}

        await bob.send(frame("answer_call", caller="ada", rtcMessage=ANSWER))
        back = {
            **SEED_CANDIDATE,
            "candidate": SEED_CANDIDATE["candidate"].replace("50000", "50001"),
        }
        await bob.send(frame("ICEcandidate", user="ada", rtcMessage=back))
        answered = await receive_until(ada, "call_answered")
        assert answered["data"]["rtcMessage"] == ANSWER
        assert await receive_until(ada, "ICEcandidate") == {
            "type": "ICEcandidate",
            "data": {"rtcMessage": back},
        }


async def test_standard_candidates_are_relayed_in_their_own_shape(client: Any) -> None:
    async with logged_in(client, "ada") as ada, logged_in(client, "bob") as bob:
        await connected_call(ada, bob, "ada", "bob")
        candidate = {"candidate": "candidate:2 1 udp 1 10.0.0.1 9 typ host", "sdpMid": "0"}
        await bob.send(frame("ICEcandidate", user="ada", rtcMessage=candidate))
        assert await expect(ada, "ICEcandidate") == {"rtcMessage": candidate}


# -- states --------------------------------------------------------------------------------


async def others_status(connection: Any, me: str) -> dict[str, str]:
    """The next user_status about someone else (a connection also hears its own)."""
    while True:
        status: dict[str, str] = (await receive_until(connection, "user_status"))["data"]
        if status["name"] != me:
            return status


async def test_directory_lists_others_and_follows_their_status(client: Any) -> None:
    async with logged_in(client, "cy") as cy:
        async with logged_in(client, "ada") as ada, logged_in(client, "bob") as bob:
            assert await others_status(cy, "cy") == {"name": "ada", "status": "available"}
            assert await others_status(cy, "cy") == {"name": "bob", "status": "available"}
            await connected_call(ada, bob, "ada", "bob")
            busy = [await others_status(cy, "cy") for _ in range(2)]
            assert sorted(item["name"] for item in busy) == ["ada", "bob"]
            assert {item["status"] for item in busy} == {"busy"}
            await ada.send(frame("hangup"))
            assert await expect(ada, "call_ended") == {"name": "bob", "reason": "hung_up"}
            assert await expect(bob, "call_ended") == {"name": "ada", "reason": "hung_up"}
            free = [await others_status(cy, "cy") for _ in range(2)]
            assert {item["status"] for item in free} == {"available"}
        gone = [await others_status(cy, "cy") for _ in range(2)]
        assert sorted((item["name"], item["status"]) for item in gone) == [
            ("ada", "offline"),
            ("bob", "offline"),
        ]
        async with client.websocket("/ws/call/") as late:
            await receive_json(late)
            await late.send(frame("login", name="eve"))
            welcome = await receive_until(late, "logged_in")
            assert welcome["data"]["users"] == [{"name": "cy", "status": "available"}]


async def test_busy_while_ringing_and_while_in_call(client: Any) -> None:
    async with (
        logged_in(client, "ada") as ada,
        logged_in(client, "bob") as bob,
        logged_in(client, "cy") as cy,
    ):
        await ringing_call(ada, bob, "bob")
        await cy.send(frame("call", name="bob", rtcMessage=OFFER))
        assert await expect(cy, "busy") == {"name": "bob"}
        await bob.send(frame("answer_call", caller="ada", rtcMessage=ANSWER))
        await expect(ada, "call_answered")
        await cy.send(frame("call", name="ada", rtcMessage=OFFER))
        assert await expect(cy, "busy") == {"name": "ada"}
        # cy is free again: it can call someone else at once
        async with logged_in(client, "dee") as dee:
            await ringing_call(cy, dee, "dee")


async def test_calling_someone_offline_is_unavailable(client: Any) -> None:
    async with logged_in(client, "ada") as ada:
        await ada.send(frame("call", name="nobody", rtcMessage=OFFER))
        assert await expect(ada, "unavailable") == {"name": "nobody"}
        await ada.send(frame("call", name="ada", rtcMessage=OFFER))
        assert (await expect(ada, "error"))["code"] == "invalid_call"


async def test_decline(client: Any) -> None:
    async with logged_in(client, "ada") as ada, logged_in(client, "bob") as bob:
        await ringing_call(ada, bob, "bob")
        await bob.send(frame("decline"))
        assert await expect(ada, "call_ended") == {"name": "bob", "reason": "declined"}
        assert await expect(bob, "call_ended") == {"name": "ada", "reason": "declined"}
        await bob.send(frame("answer_call", caller="ada", rtcMessage=ANSWER))
        assert (await expect(bob, "error"))["code"] == "no_such_call"
        await assert_no_call_frames(ada)


async def test_cancel(client: Any) -> None:
    async with logged_in(client, "ada") as ada, logged_in(client, "bob") as bob:
        await ringing_call(ada, bob, "bob")
        await ada.send(frame("cancel"))
        assert await expect(ada, "call_ended") == {"name": "bob", "reason": "cancelled"}
        assert await expect(bob, "call_ended") == {"name": "ada", "reason": "cancelled"}
        await ringing_call(ada, bob, "bob")  # both idle again


async def test_hangup_of_a_ringing_call_declines_or_cancels_it(client: Any) -> None:
    async with logged_in(client, "ada") as ada, logged_in(client, "bob") as bob:
        await ringing_call(ada, bob, "bob")
        await bob.send(frame("hangup"))
        assert await expect(ada, "call_ended") == {"name": "bob", "reason": "declined"}
        await expect(bob, "call_ended")
        await ringing_call(ada, bob, "bob")
        await ada.send(frame("hangup"))
        assert await expect(bob, "call_ended") == {"name": "ada", "reason": "cancelled"}


@pytest.mark.parametrize("settings_overrides", [{"call": {"ring_timeout_seconds": 0.5}}])
async def test_ring_timeout_ends_the_call_on_both_sides(client: Any) -> None:
    async with logged_in(client, "ada") as ada, logged_in(client, "bob") as bob:
        await ringing_call(ada, bob, "bob")
        assert await expect(ada, "call_ended") == {"name": "bob", "reason": "no_answer"}
        assert await expect(bob, "call_ended") == {"name": "ada", "reason": "no_answer"}
        await bob.send(frame("answer_call", caller="ada", rtcMessage=ANSWER))
        assert (await expect(bob, "error"))["code"] == "no_such_call"


@pytest.mark.parametrize("settings_overrides", [{"call": {"reach_timeout_seconds": 0.3}}])
async def test_a_callee_whose_connection_never_responds_is_unavailable(
    app: Quart, client: Any
) -> None:
    await app.extensions["quartchat"].directory.claim("ghost", "gone-connection", None)
    async with logged_in(client, "ada") as ada:
        await ada.send(frame("call", name="ghost", rtcMessage=OFFER))
        assert await expect(ada, "unavailable") == {"name": "ghost"}


@pytest.mark.parametrize("caller_leaves", [True, False])
async def test_disconnect_mid_call_tells_the_other_side_at_once(
    client: Any, caller_leaves: bool
) -> None:
    stays, leaves = ("bob", "ada") if caller_leaves else ("ada", "bob")
    async with logged_in(client, stays) as staying:
        async with logged_in(client, leaves) as leaving:
            if caller_leaves:
                await connected_call(leaving, staying, "ada", "bob")
            else:
                await connected_call(staying, leaving, "ada", "bob")
        assert await expect(staying, "call_ended") == {"name": leaves, "reason": "disconnected"}
        async with logged_in(client, "cy") as cy:  # free again
            await ringing_call(staying, cy, "cy")


async def test_callee_disconnecting_while_ringing_ends_the_attempt(client: Any) -> None:
    async with logged_in(client, "ada") as ada:
        async with logged_in(client, "bob") as bob:
            await ringing_call(ada, bob, "bob")
        assert await expect(ada, "call_ended") == {"name": "bob", "reason": "disconnected"}
        assert await receive_until(ada, "user_status") == {
            "type": "user_status",
            "data": {"name": "bob", "status": "offline"},
        }
        await ada.send(frame("call", name="bob", rtcMessage=OFFER))
        assert await expect(ada, "unavailable") == {"name": "bob"}


async def test_renegotiation_is_relayed_only_within_a_call(client: Any) -> None:
    async with logged_in(client, "ada") as ada, logged_in(client, "bob") as bob:
        await ada.send(frame("sdp", rtcMessage=OFFER))
        assert (await expect(ada, "error"))["code"] == "not_in_call"
        await connected_call(ada, bob, "ada", "bob")
        restart = {"type": "offer", "sdp": OFFER["sdp"] + "a=ice-options:trickle\r\n"}
        await ada.send(frame("sdp", rtcMessage=restart))
        assert await expect(bob, "sdp") == {"rtcMessage": restart}
        await bob.send(frame("sdp", rtcMessage=ANSWER))
        assert await expect(ada, "sdp") == {"rtcMessage": ANSWER}


# -- identity ------------------------------------------------------------------------------


async def test_a_live_name_cannot_be_taken(client: Any) -> None:
    async with logged_in(client, "ada") as first, client.websocket("/ws/call/") as second:
        await receive_json(second)
        await second.send(frame("login", name="ada"))
        error = await expect(second, "error")
        assert error["code"] == "name_taken"
        await second.send(frame("login", name="ada2"))
        assert (await expect(second, "logged_in"))["name"] == "ada2"
        await second.send(frame("call", name="ada", rtcMessage=OFFER))
        assert (await expect(first, "call_received"))["caller"] == "ada2"


async def test_the_same_browser_reclaims_its_name(app: Quart, client: Any) -> None:
    """A reload: the page's signed cookie identifies the browser, whose newer connection
    takes the name over; the stale one is told and closed with 4009.  Another site's page
    is refused at the handshake; a client without an Origin gets in, but its cookie counts
    for nothing."""
    page = await client.get("/call")
    assert page.status_code == 200
    cookie = page.headers["Set-Cookie"].split(";", 1)[0]
    same_browser = {"Cookie": cookie, "Origin": "http://localhost", "Host": "localhost"}
    other_site = {**same_browser, "Origin": "http://evil.example"}
    no_origin = {"Cookie": cookie, "Host": "localhost"}
    async with logged_in(client, "ada", headers=same_browser) as stale:
        with pytest.raises(WebsocketResponseError) as refused:
            async with client.websocket("/ws/call/", headers=other_site) as foreign:
                await receive_json(foreign)
        assert refused.value.response.status_code == 403
        async with client.websocket("/ws/call/", headers=no_origin) as forged:
            await receive_json(forged)
            await forged.send(frame("login", name="ada"))
            assert (await expect(forged, "error"))["code"] == "name_taken"
        async with logged_in(client, "ada", headers=same_browser) as fresh:
            error = await receive_until(stale, "error")
            assert error["data"]["code"] == "replaced"
            async with logged_in(client, "bob") as bob:
                await bob.send(frame("call", name="ada", rtcMessage=OFFER))
                assert (await expect(fresh, "call_received"))["caller"] == "bob"
    directory = app.extensions["quartchat"].directory
    assert await directory.lookup("ada") is None


# -- injection and bad input ---------------------------------------------------------------


async def test_another_tab_cannot_take_the_name_during_a_call(client: Any) -> None:
    """The same browser may take its name over when idle (a reload), never mid-call."""
    page = await client.get("/call")
    cookie = page.headers["Set-Cookie"].split(";", 1)[0]
    same_browser = {"Cookie": cookie, "Origin": "http://localhost", "Host": "localhost"}
    async with (
        logged_in(client, "ada", headers=same_browser) as ada,
        logged_in(client, "bob") as bob,
    ):
        await connected_call(ada, bob, "ada", "bob")
        async with client.websocket("/ws/call/", headers=same_browser) as second_tab:
            await receive_json(second_tab)
            await second_tab.send(frame("login", name="ada"))
            error = await expect(second_tab, "error")
            assert error == {
                "code": "name_taken",
                "message": "ada is already in a call in another window.",
            }
        await assert_no_call_frames(ada)
        await assert_no_call_frames(bob)
        await ada.send(frame("hangup"))
        assert await expect(bob, "call_ended") == {"name": "ada", "reason": "hung_up"}


async def test_a_third_party_cannot_reach_into_a_call(client: Any) -> None:
    async with (
        logged_in(client, "ada") as ada,
        logged_in(client, "bob") as bob,
        logged_in(client, "eve") as eve,
    ):
        await ringing_call(ada, bob, "bob")
        attempts = [
            (frame("answer_call", caller="ada", rtcMessage=ANSWER), "no_such_call"),
            (frame("ICEcandidate", user="ada", rtcMessage=SEED_CANDIDATE), "not_in_call"),
            (frame("ICEcandidate", user="bob", rtcMessage=SEED_CANDIDATE), "not_in_call"),
            (frame("sdp", rtcMessage=OFFER), "not_in_call"),
            (frame("hangup"), "not_in_call"),
            (frame("decline"), "not_in_call"),
            (frame("cancel"), "not_in_call"),
        ]
        for attempt, code in attempts:
            await eve.send(attempt)
            assert (await expect(eve, "error"))["code"] == code
        await bob.send(frame("answer_call", caller="eve", rtcMessage=ANSWER))
        assert (await expect(bob, "error"))["code"] == "no_such_call"
        await assert_no_call_frames(ada)
        await bob.send(frame("answer_call", caller="ada", rtcMessage=ANSWER))
        assert (await expect(ada, "call_answered"))["rtcMessage"] == ANSWER


BAD_FRAMES = [
    (b"\x00binary", "invalid_frame"),
    ("{not json", "invalid_json"),
    ("[1, 2]", "invalid_frame"),
    (frame("dial", name="bob"), "invalid_frame"),
    (json.dumps({"type": "call"}), "invalid_frame"),
    (frame("call", name="bob"), "invalid_frame"),
    (frame("call", name="bob", rtcMessage={"type": "offer", "sdp": 5}), "invalid_frame"),
    (frame("call", name="bob", rtcMessage={"type": "hello", "sdp": ""}), "invalid_frame"),
    (frame("call", name="bob", rtcMessage={"type": "rollback"}), "invalid_frame"),
    (frame("call", name="bob", rtcMessage=ANSWER), "invalid_frame"),
    (frame("sdp", rtcMessage={"type": "pranswer", "sdp": ""}), "invalid_frame"),
    (
        frame("ICEcandidate", user="bob", rtcMessage={"candidate": "c", "sdpMid": "m" * 300}),
        "invalid_frame",
    ),
    (frame("call", name="<b>x</b>", rtcMessage=OFFER), "invalid_name"),
    (frame("call", name="bob", rtcMessage={"type": "offer", "sdp": "x" * 5000}), "too_large"),
    (frame("ICEcandidate", user="bob", rtcMessage={"candidate": "c" * 300}), "too_large"),
    (frame("ICEcandidate", user="bob", rtcMessage={"candidate": "c", "extra": 1}), "invalid_frame"),
    (frame("login", name="x" * 100), "invalid_name"),
    (frame("login", name="ada"), "already_logged_in"),
]


@pytest.mark.parametrize(
    "settings_overrides", [{"call": {"sdp_max_bytes": 4096, "candidate_max_bytes": 256}}]
)
async def test_bad_frames_get_an_error_and_the_connection_stays_open(client: Any) -> None:
    async with logged_in(client, "ada") as ada, logged_in(client, "bob") as bob:
        for raw, code in BAD_FRAMES:
            await ada.send(raw)
            error = await expect(ada, "error")
            assert error["code"] == code, raw
            assert error["message"]
        await assert_no_call_frames(bob)
        await ringing_call(ada, bob, "bob")


async def test_frames_before_login_are_refused(client: Any) -> None:
    async with client.websocket("/ws/call/") as anonymous, logged_in(client, "bob") as bob:
        await receive_json(anonymous)
        await anonymous.send(frame("call", name="bob", rtcMessage=OFFER))
        assert (await expect(anonymous, "error"))["code"] == "not_logged_in"
        await assert_no_call_frames(bob)


@pytest.mark.parametrize("settings_overrides", [{"call": {"rate_per_second": 1, "rate_burst": 3}}])
async def test_flooding_is_rate_limited(client: Any) -> None:
    async with logged_in(client, "ada") as ada:
        for _ in range(5):
            await ada.send(frame("hangup"))
        codes = [(await expect(ada, "error"))["code"] for _ in range(5)]
        assert codes.count("rate_limited") >= 2
        assert codes[:2] == ["not_in_call", "not_in_call"]


async def test_a_broker_failure_is_an_error_and_frees_the_name(
    app: Quart, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = app.extensions["quartchat"]
    publish = services.broker.publish

    async def failing(topic: str, text: str) -> None:
        raise BrokerUnavailable("redis is restarting")

    async with logged_in(client, "ada") as ada, logged_in(client, "bob") as bob:
        await connected_call(ada, bob, "ada", "bob")
        monkeypatch.setattr(services.broker, "publish", failing)
        await ada.send(frame("sdp", rtcMessage=OFFER))
        error = await expect(ada, "error")
        assert error["code"] == "unavailable"
        await ada.close(1000)
    monkeypatch.setattr(services.broker, "publish", publish)
    assert await services.directory.lookup("ada") is None  # released despite the failure


async def test_a_connection_behind_gets_each_persons_latest_status_and_every_offline() -> None:
    from quartchat.broker import ConflatingSubscriber
    from quartchat.call.session import _status_event, _status_subject

    async def texts(*events: str) -> list[str]:
        inbox = ConflatingSubscriber(max_queue=2, key=_status_subject)
        for event in events:
            inbox.deliver(Frame(event))
        assert not inbox.overflowed
        return [frame.text for frame in await inbox.get_all()]

    ada_busy, ada_free = _status_event("ada", "busy"), _status_event("ada", "available")
    bob_busy, ada_gone = _status_event("bob", "busy"), _status_event("ada", "offline")
    signal = '{"signal":"ringing"}'
    assert await texts(ada_busy, bob_busy, signal, ada_free) == [bob_busy, signal, ada_free]
    assert await texts(ada_busy, ada_gone, ada_free) == [ada_gone, ada_free]
    assert await texts(ada_free, ada_busy) == [ada_busy]
    # 300 status changes of 3 people fit an inbox of 2: only the others count toward it.
    people = [_status_event(name, "busy") for name in ("ada", "bob", "cy")] * 100
    assert await texts(*people, signal, signal) == [*people[-3:], signal, signal]
