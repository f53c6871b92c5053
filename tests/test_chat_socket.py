"""The room websocket through Quart's test client: protocol, history, resume, bad input."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from quart import Quart
from quart.testing.connections import WebsocketDisconnectError, WebsocketResponseError

from quartchat.asgi_socket import route_path
from quartchat.chat.endpoint import room_and_user
from quartchat.chat.writer import chat_message
from quartchat.messages import encode
from quartchat.sockets import PROTOCOL
from quartchat.store import NewMessage
from quartchat.topics import room_topic

from . import databases
from .conftest import assert_silent, receive_json, receive_until

SEED_FIELDS = {"type", "message", "user", "datetime"}


def extended(client: Any, room: str, user: str, since: int | None = None) -> Any:
    path = f"/ws/room/{room}/{user}/" + (f"?since={since}" if since is not None else "")
    # Quart's test client drops its `subprotocols` argument; the scope carries them instead.
    return client.websocket(path, scope_base={"subprotocols": [PROTOCOL]})


async def join_extended(
    connection: Any, first_tab: bool = True
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read presence and history; for a first tab, also its own member_joined."""
    presence = await receive_json(connection)
    history = await receive_json(connection)
    assert presence["type"] == "presence"
    assert history["type"] == "history"
    while (
        first_tab and (await receive_until(connection, "member_joined"))["user"] != presence["user"]
    ):
        pass
    return presence, history


async def post(connection: Any, text: str) -> dict[str, Any]:
    """Send a message and wait for its echo."""
    await connection.send(json.dumps({"message": text}))
    return await receive_until(connection, "chat_message")


async def test_seed_client_sequence_unchanged(client: Any) -> None:
    async with (
        client.websocket("/ws/room/lobby/ada/") as ada,
        client.websocket("/ws/room/lobby/bob/") as bob,
    ):
        await ada.send(json.dumps({"message": "hello"}))
        for connection in (ada, bob):
            frame = await receive_json(connection)
            assert frame.keys() >= SEED_FIELDS
            assert frame["type"] == "chat_message"
            assert (frame["message"], frame["user"]) == ("hello", "ada")
            moment = datetime.fromisoformat(frame["datetime"])
            assert moment.utcoffset() == timedelta(0)
            assert abs(datetime.now(moment.tzinfo) - moment) < timedelta(seconds=10)
        # a seed client never sees event types it does not know
        async with client.websocket("/ws/room/lobby/cyd/"):
            await assert_silent(ada)


async def test_extended_presence_join_and_leave(client: Any) -> None:
    async with extended(client, "lobby", "ada") as ada:
        presence, history = await join_extended(ada)
        assert presence == {"type": "presence", "room": "lobby", "user": "ada", "members": ["ada"]}
        assert history == {"type": "history", "messages": [], "since": None, "complete": True}
        async with extended(client, "lobby", "bob") as bob:
            bob_presence, _ = await join_extended(bob)
            assert bob_presence["members"] == ["ada", "bob"]
            joined = await receive_until(ada, "member_joined")
            assert joined["user"] == "bob"
        left = await receive_until(ada, "member_left")
        assert left["user"] == "bob"


async def test_two_tabs_of_one_person_join_and_leave_once(client: Any) -> None:
    async with extended(client, "lobby", "ada") as ada:
        await join_extended(ada)
        async with extended(client, "lobby", "bob") as tab1:
            await join_extended(tab1)
            assert (await receive_until(ada, "member_joined"))["user"] == "bob"
            async with extended(client, "lobby", "bob") as tab2:
                presence, _ = await join_extended(tab2, first_tab=False)
                assert presence["members"] == ["ada", "bob"]
            await assert_silent(ada)  # bob still has a tab open: no join, no leave
            response = await client.get("/api/rooms")
            assert (await response.get_json())["rooms"] == [{"name": "lobby", "members": 2}]
        assert (await receive_until(ada, "member_left"))["user"] == "bob"


@pytest.fixture
def settings_overrides(settings_overrides: dict[str, Any]) -> dict[str, Any]:
    return {
        **settings_overrides,
        "limits": {"rate_per_second": 1000, "rate_burst": 1000, "page_max": 7},
    }


async def fill_room(client: Any, room: str, count: int) -> None:
    async with client.websocket(f"/ws/room/{room}/filler/") as filler:
        for n in range(1, count + 1):
            await filler.send(json.dumps({"message": f"m{n}"}))
        async with asyncio.timeout(10):
            while (await receive_json(filler))["message"] != f"m{count}":
                pass


async def test_history_on_entry_is_the_last_50(client: Any) -> None:
    await fill_room(client, "busy", 60)
    async with extended(client, "busy", "ada") as ada:
        _, history = await join_extended(ada)
        assert [m["id"] for m in history["messages"]] == list(range(11, 61))
        assert history["messages"][-1]["message"] == "m60"
    async with client.websocket("/ws/room/busy/seed/") as seed:  # seed dialect: plain frames
        replay = [await receive_json(seed) for _ in range(50)]
        assert [frame["message"] for frame in replay] == [f"m{n}" for n in range(11, 61)]
        await assert_silent(seed)


async def test_resume_sends_everything_after_since_in_pages(client: Any) -> None:
    await fill_room(client, "busy", 20)
    async with extended(client, "busy", "ada", since=4) as ada:
        await receive_json(ada)  # presence
        ids: list[int] = []
        completes = []
        while not completes or not completes[-1]:
            page = await receive_json(ada)
            assert page["type"] == "history" and page["since"] == 4
            ids += [m["id"] for m in page["messages"]]
            completes.append(page["complete"])
        assert ids == list(range(5, 21))  # pages of limits.page_max (7): 7 + 7 + 2
        assert completes == [False, False, True]
        live = await post(ada, "after resume")
        assert live["id"] == 21


async def test_resume_while_messages_arrive_loses_and_repeats_nothing(client: Any) -> None:
    """A reader that keeps reconnecting with ?since= while a writer posts sees every id once."""
    total = 120
    seen: list[int] = []

    async def write() -> None:
        async with client.websocket("/ws/room/race/writer/") as writer:
            for n in range(total):
                await writer.send(json.dumps({"message": f"m{n}"}))
                if n % 10 == 0:
                    await asyncio.sleep(0.005)
            # stay until the last one is stored: a closed socket's unread frames are dropped
            while (await receive_json(writer))["message"] != f"m{total - 1}":
                pass

    async def read() -> None:
        while not seen or seen[-1] < total:
            since = seen[-1] if seen else 0
            async with extended(client, "race", "reader", since=since) as reader:
                for _ in range(15):  # read a little, then drop the connection
                    frame = await receive_json(reader)
                    if frame["type"] == "history":
                        seen.extend(m["id"] for m in frame["messages"])
                    elif frame["type"] == "chat_message":
                        seen.append(frame["id"])
                    if seen and seen[-1] == total:
                        break

    async with asyncio.timeout(30):
        await asyncio.gather(write(), read())
    assert seen == list(range(1, total + 1))


async def test_typing_is_relayed_and_throttled(client: Any) -> None:
    async with extended(client, "lobby", "ada") as ada, extended(client, "lobby", "bob") as bob:
        await join_extended(ada)
        await join_extended(bob)
        await bob.send(json.dumps({"type": "typing"}))
        await bob.send(json.dumps({"type": "typing"}))
        assert (await receive_until(ada, "typing"))["user"] == "bob"
        await ada.send(json.dumps({"message": "marker"}))
        frames = []
        while (frame := await receive_json(ada))["type"] != "chat_message":
            frames.append(frame)
        assert [f for f in frames if f["type"] == "typing"] == []  # the second was throttled


BAD_FRAMES = [
    ("not json", "invalid_json"),
    (b"\x00\x01binary", "invalid_frame"),
    ("[1, 2]", "invalid_frame"),
    ('{"msg": "typo"}', "invalid_frame"),
    ('{"message": 42}', "invalid_frame"),
    ('{"type": "shout", "message": "hi"}', "invalid_frame"),
    ('{"message": "hi", "extra": true}', "invalid_frame"),
    ('{"message": ""}', "message_empty"),
    ('{"message": "   \\n "}', "message_empty"),
    (json.dumps({"message": "x" * 2001}), "message_too_long"),
    (json.dumps({"message": "hi", "client_id": "c" * 65}), "invalid_frame"),
    (json.dumps({"message": "hi", "client_id": "has space"}), "invalid_frame"),
    ("[" * 5000 + "]" * 5000, "invalid_json"),  # nesting deeper than the parser's recursion
    ('{"message": "lone \\ud800 surrogate"}', "invalid_text"),
    ('{"message": "nul \\u0000 byte"}', "invalid_text"),
]


@pytest.fixture
def strict_app_overrides(settings_overrides: dict[str, Any]) -> dict[str, Any]:
    return settings_overrides


@pytest.mark.parametrize(("frame", "code"), BAD_FRAMES, ids=lambda value: str(value)[:20])
async def test_bad_frames_get_an_error_and_reach_no_one(
    client: Any, frame: str | bytes, code: str
) -> None:
    async with extended(client, "lobby", "ada") as ada, extended(client, "lobby", "bob") as bob:
        await join_extended(ada)
        await join_extended(bob)
        await ada.send(frame)
        error = await receive_until(ada, "error")
        assert error["code"] == code
        assert error["message"]
        await assert_silent(bob)
        echo = await post(ada, "still here")  # the connection stays open and usable
        assert echo["message"] == "still here"
    response = await client.get("/api/rooms/lobby/messages")
    assert [m["message"] for m in (await response.get_json())["messages"]] == ["still here"]


async def test_seed_client_also_gets_error_events(client: Any) -> None:
    async with client.websocket("/ws/room/lobby/ada/") as ada:
        await ada.send("{broken")
        assert (await receive_json(ada))["code"] == "invalid_json"


@pytest.mark.parametrize(
    "path",
    [
        "/ws/room/bad%20room/ada/",
        "/ws/room/lobby/%20ada/",
        "/ws/room/lobby/" + "x" * 33 + "/",
        "/ws/room/lobby/ada/?since=-1",
        "/ws/room/lobby/ada/?since=abc",
        "/ws/room/lobby/ada/?since=99999999999999999999",
    ],
)
async def test_handshake_refused_for_bad_names(client: Any, path: str) -> None:
    with pytest.raises(WebsocketResponseError) as refused:
        async with client.websocket(path):
            pass
    assert refused.value.response.status_code == 400
    body = await refused.value.response.get_json()
    assert body["error"] == "bad_handshake" and body["message"]


async def test_message_text_is_stored_verbatim(client: Any) -> None:
    text = '<img src=x onerror=alert(1)> & "quotes" ünïcødé 🎉'
    async with client.websocket("/ws/room/lobby/ada/") as ada:
        assert (await post(ada, text))["message"] == text


async def test_errors_name_the_refused_message(client: Any) -> None:
    async with extended(client, "lobby", "ada") as ada:
        await join_extended(ada)
        await ada.send(json.dumps({"type": "message", "message": " ", "client_id": "k-2"}))
        error = await receive_until(ada, "error")
        assert (error["code"], error["client_id"]) == ("message_empty", "k-2")
        await ada.send("not json")
        assert (await receive_until(ada, "error"))["client_id"] is None


async def test_client_id_is_echoed(client: Any) -> None:
    async with extended(client, "lobby", "ada") as ada:
        await join_extended(ada)
        await ada.send(json.dumps({"type": "message", "message": "hi", "client_id": "k-1"}))
        echo = await receive_until(ada, "chat_message")
        assert echo["client_id"] == "k-1"


def break_store(app: Quart) -> Any:
    """Drop the messages table under the running app: every store call now fails."""
    from quartchat.services import EXTENSION

    return databases.break_store(app.extensions[EXTENSION].settings.store.url)


async def test_failed_store_means_error_and_nothing_relayed(app: Quart, client: Any) -> None:
    async with extended(client, "lobby", "ada") as ada, extended(client, "lobby", "bob") as bob:
        await join_extended(ada)
        await join_extended(bob)
        await break_store(app)
        await ada.send(json.dumps({"message": "into the void"}))
        error = await receive_until(ada, "error")
        assert error["code"] == "unavailable"
        await assert_silent(bob)
        await assert_silent(ada)


async def test_joining_without_history_is_refused_with_try_again_later(
    app: Quart, client: Any
) -> None:
    await break_store(app)
    async with extended(client, "lobby", "ada") as ada:
        await receive_json(ada)  # presence
        error = await receive_json(ada)
        assert (error["type"], error["code"]) == ("error", "unavailable")
        with pytest.raises(WebsocketDisconnectError) as closed:
            await receive_json(ada)
        assert closed.value.args[0] == 1013


async def test_a_message_resent_after_reconnect_is_stored_and_shown_once(client: Any) -> None:
    frame = json.dumps({"type": "message", "message": "did this arrive?", "client_id": "k-77"})
    async with extended(client, "lobby", "bob") as bob:
        await join_extended(bob)
        async with extended(client, "lobby", "ada") as ada:
            await join_extended(ada)
            await ada.send(frame)
            echo = await receive_until(ada, "chat_message")
        assert (await receive_until(bob, "chat_message"))["id"] == echo["id"]
        # ada never saw the echo (say): she reconnects and sends the same frame again
        async with extended(client, "lobby", "ada", since=echo["id"] - 1) as ada:
            await receive_json(ada)  # presence
            replay = await receive_json(ada)
            assert [m["client_id"] for m in replay["messages"]] == ["k-77"]
            await ada.send(frame)
            await ada.send(json.dumps({"message": "next"}))
            assert (await receive_until(ada, "chat_message"))["message"] == "next"
        assert (await receive_until(bob, "chat_message"))["message"] == "next"
    response = await client.get("/api/rooms/lobby/messages")
    texts = [m["message"] for m in (await response.get_json())["messages"]]
    assert texts == ["did this arrive?", "next"]


async def test_resume_from_beyond_the_store_still_gets_new_messages(client: Any) -> None:
    async with extended(client, "lobby", "ada", since=500) as ada:  # e.g. the store was reset
        await receive_json(ada)  # presence
        history = await receive_json(ada)
        assert (history["since"], history["messages"]) == (0, [])
        echo = await post(ada, "first after the reset")
        assert echo["id"] == 1


async def test_live_messages_reach_a_socket_in_id_order_even_when_published_out_of_order(
    app: Quart, client: Any
) -> None:
    """Two processes writing one room publish independently: a message may arrive before
    an earlier one, or the earlier one may never be published (its process died).  Each
    socket still delivers every id once, in order, filling gaps from the store."""
    services = app.extensions["quartchat"]
    async with (
        extended(client, "gaps", "ada") as ada,
        client.websocket("/ws/room/gaps/seed/") as seed,
    ):
        await join_extended(ada)
        appended = await services.store.append_many(
            [NewMessage("gaps", "bob", f"m{n}") for n in range(1, 5)]
        )
        texts = [encode(chat_message(item.message)) for item in appended]
        topic = room_topic("gaps")
        await services.broker.publish(topic, texts[1])  # m2 overtakes m1
        await services.broker.publish(topic, texts[0])
        await services.broker.publish(topic, texts[3])  # m3 is never published
        await services.broker.publish(topic, texts[1])  # a duplicate
        for connection in (ada, seed):
            got = [await receive_until(connection, "chat_message") for _ in range(4)]
            assert [(m["id"], m["message"]) for m in got] == [(n, f"m{n}") for n in range(1, 5)]
            await assert_silent(connection)


@pytest.mark.parametrize(
    ("path", "root_path", "names"),
    [
        ("/ws/room/lobby/ada/", "", ("lobby", "ada")),
        ("/chat/ws/room/lobby/ada/", "/chat", ("lobby", "ada")),  # served under a prefix
        ("/ws/room/café/张伟/", "", ("café", "张伟")),
        ("/ws/room//ada/", "", ("", "ada")),  # then refused: an empty name
        ("/ws/room/lobby/ada", "", None),
        ("/ws/room/lobby/", "", None),
        ("/ws/room/lobby/ada/x/", "", None),
        ("/ws/call/", "", None),
    ],
)
def test_which_paths_are_room_sockets(
    path: str, root_path: str, names: tuple[str, str] | None
) -> None:
    scope: Any = {"type": "websocket", "path": path, "root_path": root_path}
    assert room_and_user(route_path(scope)) == names
